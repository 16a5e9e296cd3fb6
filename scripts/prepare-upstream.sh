#!/usr/bin/env bash
# Prepare upstream AgCluster (whiteboardmonk/agcluster-container) for `python -m bench upstream`,
# which measures it side by side with this tree (docs/PERFORMANCE.md, "Upstream, side by side").
#
# Usage: scripts/prepare-upstream.sh UPSTREAM_CHECKOUT [DIR]
#   UPSTREAM_CHECKOUT  a git checkout (or bare clone) of upstream; its HEAD is what gets measured
#   DIR                where the prepared copy goes (default: .bench-upstream in this repository;
#                      the bench reads AGCLUSTER_UPSTREAM_DIR, with the same default)
#
# What it does, each step skipped when already done for the same inputs:
#   1. DIR/src: upstream's tracked files at HEAD (git archive), with the measurement edits below
#      applied to that copy (never to the checkout).
#   2. DIR/venv: a virtualenv with upstream's requirements.txt, to run its backend.
#   3. the image upstream-agcluster/agent:latest from bench/upstream.Dockerfile (upstream's
#      docker/Dockerfile.agent steps on our local Debian base; no container registry needed),
#      labelled with the upstream commit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/image-lib.sh
source "$here/image-lib.sh"
log() { printf '[prepare-upstream] %s\n' "$*" >&2; }
die() { printf '[prepare-upstream] error: %s\n' "$*" >&2; exit 1; }

[[ $# -ge 1 && $# -le 2 && "$1" != -h && "$1" != --help ]] ||
    { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 2; }
checkout="$1"
dir="${2:-$root/.bench-upstream}"
image="upstream-agcluster/agent:latest"
base="agcluster/base:bookworm"
# The measurement edits below were written against this upstream commit; on another commit
# they are tried as well, and any line they expect but do not find stops the script.
written_against="3a0315a6b65674005a95124fa1ccbc619f6b064b"

commit="$(git -C "$checkout" rev-parse --verify 'HEAD^{commit}' 2>/dev/null)" ||
    die "$checkout is not a git checkout with a HEAD commit"
[[ "$commit" == "$written_against" ]] ||
    log "upstream HEAD is $commit; the measurement edits were written against $written_against"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

# 1. The patched copy. The stamp names the commit and this script's own hash, so editing the
#    edits (or pointing at another commit) re-exports.
stamp="$commit $(sha256sum < "${BASH_SOURCE[0]}" | cut -c1-16)"
if [[ -f "$dir/src/.prepared" && "$(cat "$dir/src/.prepared")" == "$stamp" ]]; then
    log "$dir/src is upstream $commit with the measurement edits already"
else
    rm -rf "$dir/src.tmp"
    mkdir -p "$dir/src.tmp"
    git -C "$checkout" archive --format=tar "$commit" | tar -x -C "$dir/src.tmp"
    # Each edit: (file, the exact upstream text, its replacement). Every upstream text must occur
    # exactly once, or nothing is written.
    python3 - "$dir/src.tmp" "$written_against" <<'PY'
import pathlib
import sys

src, written_against = pathlib.Path(sys.argv[1]), sys.argv[2]
provider = "src/agcluster/container/core/providers/docker_provider.py"
EDITS = [
    # os, for the two environment reads below.
    (provider, "import asyncio\n", "import asyncio\nimport os  # [bench edit]\n"),
    # Names: agcluster-agent-* and agcluster/agent:latest are this repository's product on the
    # same engine, so upstream's containers, volumes and image get an upstream- prefix.
    (provider, 'container_name = f"agcluster-{agent_id}"',
     'container_name = f"upstream-agcluster-{agent_id}"  # [bench edit] was agcluster-{agent_id}'),
    (provider, 'image="agcluster/agent:latest",',
     'image="upstream-agcluster/agent:latest",  # [bench edit] was agcluster/agent:latest'),
    (provider, 'volumes={f"agcluster-workspace-{agent_id}":',
     'volumes={f"upstream-agcluster-workspace-{agent_id}":'),
    # A label the bench's cleanup selects on (together with the name prefix).
    (provider, '"agcluster.provider": "docker",\n',
     '"agcluster.provider": "docker",\n                    "upstream-bench": "1",  # [bench edit]\n'),
    # The agent's Claude Code CLI talks to the stand-in model the backend was pointed at.
    (provider, '"AGENT_CONFIG_JSON": json.dumps(agent_config_dict),\n            }\n',
     '"AGENT_CONFIG_JSON": json.dumps(agent_config_dict),\n            }\n'
     '            if os.environ.get("ANTHROPIC_BASE_URL"):  # [bench edit] the stand-in model\n'
     '                env["ANTHROPIC_BASE_URL"] = os.environ["ANTHROPIC_BASE_URL"]\n'),
]
texts: dict[str, str] = {}
for name, old, new in EDITS:
    text = texts.setdefault(name, (src / name).read_text())
    count = text.count(old)
    if count != 1:
        sys.exit(f"[prepare-upstream] error: expected exactly one {old.strip()!r} in {name}, found {count} "
                 f"(the edits were written against upstream {written_against})")
    texts[name] = text.replace(old, new)
for name, text in texts.items():
    (src / name).write_text(text)
print(f"[prepare-upstream] {len(EDITS)} measurement edits applied to {', '.join(texts)}", file=sys.stderr)
PY
    printf '%s\n' "$stamp" > "$dir/src.tmp/.prepared"
    rm -rf "$dir/src"
    mv "$dir/src.tmp" "$dir/src"
    log "exported upstream $commit into $dir/src"
fi

# 2. The backend's virtualenv (host pip settings apply, as for any host install).
req_hash="$(sha256sum < "$dir/src/requirements.txt" | cut -c1-16)"
if [[ -x "$dir/venv/bin/python" && -f "$dir/venv/.installed-$req_hash" ]]; then
    log "$dir/venv has upstream's requirements.txt already"
else
    rm -rf "$dir/venv"
    python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install --quiet --disable-pip-version-check -r "$dir/src/requirements.txt" ||
        die "installing upstream's requirements.txt into $dir/venv failed"
    touch "$dir/venv/.installed-$req_hash"
    log "created $dir/venv with upstream's requirements.txt"
fi

# 3. The agent image. Like scripts/build-images.sh: on the local base (which already trusts the
#    host's extra CA certificates), with the host's network pip indexes and npm registry.
require_docker
if ! docker image inspect "$base" >/dev/null 2>&1; then
    log "building the local base $base first"
    BASE_IMAGE_TAG="$base" "$here/build-base-image.sh"
fi
sdk_version="$(python3 "$here/pyproject-deps.py" "$root/pyproject.toml" | sed -n 's/^claude-agent-sdk==//p')"
[[ -n "$sdk_version" ]] || die "no claude-agent-sdk==VERSION pin found in $root/pyproject.toml"
pip_index="$(pip_network_setting index-url PIP_INDEX_URL)"
pip_extra="$(pip_network_setting extra-index-url PIP_EXTRA_INDEX_URL)"
npm_registry=""
if command -v npm >/dev/null 2>&1; then
    npm_registry="$(npm config get registry 2>/dev/null || true)"
    [[ "$npm_registry" == http://* || "$npm_registry" == https://* ]] || npm_registry=""
fi
context="$dir/src/container"
hash="$(printf '%s\n' bench/upstream.Dockerfile |
    hash_inputs "$root" "base=$(image_id "$base")" "index=$pip_index" "extra=$pip_extra" "npm=$npm_registry" \
        "sdk=$sdk_version" "upstream=$commit" \
        "requirements=$(sha256sum < "$context/requirements.txt")" "server=$(sha256sum < "$context/agent_server.py")")"
if image_is_current "$image" "$hash"; then
    log "$image is up to date (upstream $commit, inputs $hash)"
else
    log "building $image (upstream $commit, claude-agent-sdk $sdk_version); a few minutes"
    logfile="$(mktemp /tmp/upstream-agent-build.XXXXXX.log)"
    if ! docker build --network host -f "$root/bench/upstream.Dockerfile" -t "$image" \
            --label "$HASH_LABEL=$hash" --label "upstream.commit=$commit" \
            --build-arg "BASE_IMAGE=$base" --build-arg "SDK_VERSION=$sdk_version" \
            --build-arg "UP_PIP_INDEX_URL=$pip_index" --build-arg "UP_PIP_EXTRA_INDEX_URL=$pip_extra" \
            --build-arg "UP_NPM_REGISTRY=$npm_registry" "$context" > "$logfile" 2>&1; then
        tail -n 40 "$logfile" >&2
        die "building $image failed (full log: $logfile)"
    fi
    rm -f "$logfile"
    log "built $image"
fi
log "prepared: $dir (upstream $commit); measure it with: python -m bench upstream"
