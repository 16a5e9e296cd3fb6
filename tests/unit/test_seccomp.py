"""The sandbox's seccomp filter, assembled here and loaded by a real bubblewrap."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from control.providers.seccomp import filter_fd, setid_filter

BWRAP = shutil.which("bwrap")
SCRIPT = """
cd "$1"
touch a && chmod 4755 a; echo "chmod-setuid=$?"
chmod 2755 a; echo "chmod-setgid=$?"
chmod 755 a; echo "chmod-plain=$?"
python3 -c 'import os; os.open("b", os.O_CREAT | os.O_WRONLY, 0o4755)'; echo "open-setuid=$?"
python3 -c 'import os; os.open("c", os.O_CREAT | os.O_WRONLY, 0o644)'; echo "open-plain=$?"
python3 -c 'import os; os.close(os.open("c", os.O_RDONLY, 0o4755))'; echo "open-existing=$?"
stat -c '%a %n' a b c 2>/dev/null
"""


def test_programs_assemble_for_both_architectures() -> None:
    for machine in ("x86_64", "aarch64"):
        program = setid_filter(machine)
        assert len(program) % 8 == 0 and 8 < len(program) < 8 * 255


@pytest.mark.skipif(BWRAP is None, reason="bubblewrap is not installed")
def test_setid_bits_cannot_be_written_inside_a_sandbox(tmp_path: Path) -> None:
    fd = filter_fd()
    try:
        result = subprocess.run([BWRAP or "", "--dev-bind", "/", "/", "--seccomp", str(fd), "--", "sh", "-c", SCRIPT,
                                 "sh", str(tmp_path)], pass_fds=[fd], capture_output=True, text=True, timeout=60)
    finally:
        os.close(fd)
    out = result.stdout
    assert "chmod-setuid=1" in out and "chmod-setgid=1" in out and "chmod-plain=0" in out, out + result.stderr
    assert "open-setuid=1" in out and "open-plain=0" in out and "open-existing=0" in out, out + result.stderr
    for path in tmp_path.iterdir():
        assert not path.stat().st_mode & 0o6000, path
