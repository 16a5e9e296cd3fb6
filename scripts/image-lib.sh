# shellcheck shell=bash
# Helpers shared by build-base-image.sh and build-images.sh (sourced, not run).
#
# Every image we build carries a label with a hash of everything that went into it, so a
# rerun can skip an image whose inputs have not changed instead of trusting Docker's layer
# cache (which still re-sends the context and re-checks every step).

HASH_LABEL="agcluster.inputs-hash"

log() { printf '[images] %s\n' "$*" >&2; }
die() { printf '[images] error: %s\n' "$*" >&2; exit 1; }

require_docker() {
    command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed"
    docker info >/dev/null 2>&1 || die "no Docker engine answers (is dockerd running, and may this user use it?)"
}

# image_label IMAGE LABEL -> the label's value, or nothing when the image or label is absent.
image_label() {
    docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null | grep -v '^<no value>$' || true
}

image_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

# image_is_current IMAGE HASH -> success when IMAGE exists with exactly this inputs hash.
image_is_current() {
    [[ "${AGCLUSTER_FORCE_REBUILD:-0}" != "1" ]] && [[ "$(image_label "$1" "$HASH_LABEL")" == "$2" ]]
}

# hash_inputs ROOT [extra strings...] < list of paths relative to ROOT
# Hashes file names and contents (not mtimes), so a fresh checkout hashes like an old one.
hash_inputs() {
    local root="$1"; shift
    {
        (cd "$root" && LC_ALL=C sort -u | while IFS= read -r path; do
            [[ -f "$path" ]] && printf '%s\0' "$path"
        done | xargs -0 -r sha256sum --)
        printf '%s\n' "$@"
    } | sha256sum | cut -c1-32
}

# source_files ROOT PATH... -> project files under the given dirs (or the files named), minus
# caches, bytecode and node_modules.
source_files() {
    local root="$1"; shift
    (cd "$root" && for d in "$@"; do
        [[ -e "$d" ]] || continue
        # node_modules never enters a build context (.dockerignore): npm installs it inside.
        find "$d" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*/node_modules/*'
    done)
}

# Host pip settings that a build inside Docker can also use: only network indexes, since
# file:// indexes and find-links paths on the host do not exist inside the build.
pip_network_setting() {
    local name="$1" env_name="$2" value
    value="${!env_name:-}"
    if [[ -z "$value" ]] && command -v pip >/dev/null 2>&1; then
        value="$(pip config get "global.$name" 2>/dev/null || true)"
    fi
    local kept=()
    for url in $value; do
        [[ "$url" == http://* || "$url" == https://* ]] && kept+=("$url")
    done
    printf '%s' "${kept[*]:-}"
}
