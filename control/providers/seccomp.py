"""A seccomp filter for local sandboxes: no file an agent creates can be setuid or setgid.

Sandboxes already run with ``no_new_privs`` on ``nosuid`` mounts, so such a bit could never
be honoured *inside*. This filter makes sure one is never *written*, so nothing an agent
leaves in its workspace can ever carry it onto the host (a copied-out binary, a workspace
read by another tool). ``chmod``-family calls and file creation (``open``/``creat``/
``mknod`` with ``O_CREAT`` or ``O_TMPFILE``) that ask for S_ISUID or S_ISGID fail with
EPERM; ``openat2`` (whose mode sits in a struct a classic BPF filter cannot read) answers
ENOSYS, so callers fall back to ``openat``; foreign ABIs (32-bit, x32) answer ENOSYS.

The program is classic BPF, assembled here because bubblewrap takes it as raw bytes
(``--seccomp FD``); nothing else in the project needs libseccomp.
"""

from __future__ import annotations

import os
import platform
import struct

# Classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
_LD_ABS_W = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
EPERM, ENOSYS = 1, 38
SETID_BITS = 0o6000
O_CREAT = 0o100
O_TMPFILE_BIT = 0o20000000
X32_SYSCALL_BIT = 0x40000000


def _arg(index: int) -> int:
    """Offset of the low 32 bits of syscall argument ``index`` in struct seccomp_data (LE)."""
    return 16 + 8 * index


# name: (mode argument, flags argument or None)
_CHECKS = {
    "chmod": (1, None), "fchmod": (1, None), "fchmodat": (2, None), "fchmodat2": (2, None),
    "creat": (1, None), "mknod": (1, None), "mknodat": (2, None),
    "open": (2, 1), "openat": (3, 2),
}
_TABLES: dict[str, tuple[int, dict[str, int]]] = {
    # AUDIT_ARCH_X86_64 and its syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl)
    "x86_64": (0xC000003E, {"open": 2, "creat": 85, "chmod": 90, "fchmod": 91, "mknod": 133, "openat": 257,
                            "mknodat": 259, "fchmodat": 268, "openat2": 437, "fchmodat2": 452}),
    # AUDIT_ARCH_AARCH64 and the generic table (include/uapi/asm-generic/unistd.h)
    "aarch64": (0xC00000B7, {"mknodat": 33, "fchmod": 52, "fchmodat": 53, "openat": 56, "openat2": 437,
                             "fchmodat2": 452}),
}


class _Program:
    """A tiny assembler: forward jumps to labels, resolved when the program is packed."""

    def __init__(self) -> None:
        self.code: list[tuple[int, object, object, int]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, k: int, jt: object = 0, jf: object = 0) -> None:
        self.code.append((code, jt, jf, k))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def pack(self) -> bytes:
        out = b""
        for index, (code, jt, jf, k) in enumerate(self.code):
            out += struct.pack("=HBBI", code, self._offset(index, jt), self._offset(index, jf), k)
        return out

    def _offset(self, index: int, target: object) -> int:
        if isinstance(target, int):
            return target
        offset = self.labels[str(target)] - index - 1
        if not 0 <= offset <= 255:
            raise ValueError(f"jump to {target} out of range")
        return offset


def setid_filter(machine: str | None = None) -> bytes:
    """The filter for this machine's architecture, as bytes for ``bwrap --seccomp``."""
    arch = machine or platform.machine()
    if arch not in _TABLES:
        raise ValueError(f"no seccomp table for {arch}")
    audit_arch, numbers = _TABLES[arch]
    p = _Program()
    p.op(_LD_ABS_W, 4)                                     # A = arch
    p.op(_JEQ_K, audit_arch, 0, "enosys")
    p.op(_LD_ABS_W, 0)                                     # A = syscall number
    if arch == "x86_64":
        p.op(_JGE_K, X32_SYSCALL_BIT, "enosys", 0)
    p.op(_JEQ_K, numbers["openat2"], "enosys", 0)
    checked = [name for name in _CHECKS if name in numbers]
    for name in checked:
        p.op(_JEQ_K, numbers[name], f"check_{name}", 0)
    p.op(_RET_K, RET_ALLOW)
    for name in checked:
        mode_arg, flags_arg = _CHECKS[name]
        p.label(f"check_{name}")
        if flags_arg is not None:
            p.op(_LD_ABS_W, _arg(flags_arg))
            p.op(_JSET_K, O_CREAT | O_TMPFILE_BIT, 0, "allow")
        p.op(_LD_ABS_W, _arg(mode_arg))
        p.op(_JSET_K, SETID_BITS, "eperm", "allow")
    p.label("allow")
    p.op(_RET_K, RET_ALLOW)
    p.label("eperm")
    p.op(_RET_K, RET_ERRNO | EPERM)
    p.label("enosys")
    p.op(_RET_K, RET_ERRNO | ENOSYS)
    return p.pack()


def filter_fd(machine: str | None = None) -> int:
    """A readable fd holding the filter, for ``bwrap --seccomp FD`` (the caller closes it)."""
    fd = os.memfd_create("agcluster-seccomp", 0)
    os.write(fd, setid_filter(machine))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
