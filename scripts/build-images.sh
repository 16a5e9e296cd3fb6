#!/usr/bin/env bash
# Build AgCluster's images (what `make images` runs). Works with no container registry: the
# base comes from scripts/build-base-image.sh (debootstrap + docker import), then
# `docker build --network host` installs Python packages from the same index the host uses.
#
# Each image is labelled with a hash of its inputs (Dockerfile, the source it copies, the
# pinned dependencies, the base image) and skipped when an image with that label exists, so
# a rerun without changes takes a second or two.
#
# Usage: scripts/build-images.sh [--force] [agent] [control] [datascience]
#   no names          agent + control
#   datascience       also agcluster/agent-datascience:latest (slow: numpy, pandas, scipy, ...)
# Env:
#   AGCLUSTER_DATASCIENCE=1   same as naming datascience
#   BASE_IMAGE=IMAGE          build on IMAGE (e.g. python:3.11-slim-bookworm where a registry
#                             is reachable) instead of the local agcluster/base:bookworm; the
#                             control image's npm stage then uses node:20-bookworm-slim unless
#                             UI_BUILDER_IMAGE says otherwise
#   PLATFORM=linux/amd64      build for that platform (what Fly runs; needed on Apple silicon)
#   AGENT_TAG, CONTROL_TAG, DATASCIENCE_TAG   override the tags
#   AGCLUSTER_FORCE_REBUILD=1 same as --force (ignore the inputs hash)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/image-lib.sh
source "$here/image-lib.sh"

agent_tag="${AGENT_TAG:-agcluster/agent:latest}"
control_tag="${CONTROL_TAG:-agcluster/control:latest}"
ds_tag="${DATASCIENCE_TAG:-agcluster/agent-datascience:latest}"

targets=()
for arg in "$@"; do
    case "$arg" in
        --force) export AGCLUSTER_FORCE_REBUILD=1 ;;
        agent|control|datascience) targets+=("$arg") ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument '$arg' (agent, control, datascience, --force)" ;;
    esac
done
[[ ${#targets[@]} -eq 0 ]] && targets=(agent control)
[[ "${AGCLUSTER_DATASCIENCE:-0}" == "1" ]] && targets+=(datascience)

require_docker
started=$SECONDS

if [[ -n "${BASE_IMAGE:-}" ]]; then
    base="$BASE_IMAGE"
    docker image inspect "$base" >/dev/null 2>&1 || docker pull "$base" >/dev/null ||
        die "base image $base is not available (unset BASE_IMAGE to build the local one)"
else
    base="agcluster/base:bookworm"
    BASE_IMAGE_TAG="$base" "$here/build-base-image.sh"
fi
base_id="$(image_id "$base")"

# The control image's npm stage: on the local base it installs Debian's npm; on a public
# base the official node image already has it.
if [[ -n "${UI_BUILDER_IMAGE:-}" ]]; then
    ui_builder="$UI_BUILDER_IMAGE"
elif [[ -n "${BASE_IMAGE:-}" ]]; then
    ui_builder="node:20-bookworm-slim"
else
    ui_builder="$base"
fi
npm_registry=""
if command -v npm >/dev/null 2>&1; then
    npm_registry="$(npm config get registry 2>/dev/null || true)"
    [[ "$npm_registry" == http://* || "$npm_registry" == https://* ]] || npm_registry=""
fi

pip_index="$(pip_network_setting index-url PIP_INDEX_URL)"
pip_extra="$(pip_network_setting extra-index-url PIP_EXTRA_INDEX_URL)"
[[ -n "$pip_index$pip_extra" ]] &&
    log "using the host's pip index settings (visible in image history: keep credentials out of them)"

# build TAG DOCKERFILE "SOURCE DIRS" [build-arg...]
build() {
    local tag="$1" dockerfile="$2" dirs="$3"; shift 3
    local inputs hash t0
    # shellcheck disable=SC2086 # dirs is a word list on purpose
    inputs="$( { printf '%s\n' "$dockerfile" .dockerignore pyproject.toml scripts/pyproject-deps.py \
                    scripts/requirements-datascience.txt; source_files "$root" $dirs; } )"
    hash="$(hash_inputs "$root" "base=$base_id" "index=$pip_index" "extra=$pip_extra" "platform=${PLATFORM:-}" \
        "$@" <<< "$inputs")"
    if image_is_current "$tag" "$hash"; then
        log "$tag is up to date ($hash)"
        return
    fi
    log "building $tag"
    t0=$SECONDS
    local args=(--network host -f "$root/$dockerfile" -t "$tag" --label "$HASH_LABEL=$hash"
                --build-arg "BASE_IMAGE=$base" --build-arg "AGC_PIP_INDEX_URL=$pip_index"
                --build-arg "AGC_PIP_EXTRA_INDEX_URL=$pip_extra")
    [[ -n "${PLATFORM:-}" ]] && args+=(--platform "$PLATFORM")
    for extra in "$@"; do args+=(--build-arg "$extra"); done
    local logfile
    logfile="$(mktemp /tmp/agcluster-build.XXXXXX.log)"
    if ! docker build "${args[@]}" "$root" > "$logfile" 2>&1; then
        tail -n 40 "$logfile" >&2
        die "building $tag failed (full log: $logfile)"
    fi
    rm -f "$logfile"
    log "built $tag in $((SECONDS - t0))s"
}

agent_inputs="machine_agent wire control/__init__.py scripts/agent-entrypoint.sh"
for target in "${targets[@]}"; do
    case "$target" in
        agent) build "$agent_tag" Dockerfile.agent "$agent_inputs" VARIANT=standard ;;
        datascience) build "$ds_tag" Dockerfile.agent "$agent_inputs" VARIANT=datascience ;;
        control)
            build "$control_tag" Dockerfile "control wire stubs presets static_ui" \
                "UI_BUILDER_IMAGE=$ui_builder" "AGC_NPM_REGISTRY=$npm_registry" ;;
    esac
done

# A rebuilt tag leaves its previous image dangling; drop only our own.
docker image prune -f --filter "label=$HASH_LABEL" >/dev/null 2>&1 || true

for target in "${targets[@]}"; do
    case "$target" in
        agent) tag="$agent_tag" ;; control) tag="$control_tag" ;; datascience) tag="$ds_tag" ;;
    esac
    log "$(docker image inspect --format '{{.Size}}' "$tag" | awk -v t="$tag" '{printf "%-40s %5.0f MB", t, $1/1e6}')"
done
log "done in $((SECONDS - started))s"
