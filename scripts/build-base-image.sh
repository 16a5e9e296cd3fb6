#!/usr/bin/env bash
# Build the local Debian base image (default tag agcluster/base:bookworm) without any
# container registry: debootstrap a minimal bookworm root from a Debian mirror, trust the
# host's CA bundle (so pip and curl work behind a TLS-intercepting proxy), and `docker import`
# it. Skipped when an image with the same inputs hash already exists.
#
# Usage: scripts/build-base-image.sh [--force]
# Env:   BASE_IMAGE_TAG (agcluster/base:bookworm), DEBIAN_SUITE (bookworm),
#        DEBIAN_MIRROR (first Debian mirror in the host's apt sources, else deb.debian.org),
#        DEBIAN_SECURITY_MIRROR, HOST_CA_BUNDLE (/etc/ssl/certs/ca-certificates.crt),
#        AGCLUSTER_FORCE_REBUILD=1 (same as --force)
# Needs: root (debootstrap, chroot), debootstrap, a running Docker engine.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/image-lib.sh
source "$here/image-lib.sh"

[[ "${1:-}" == "--force" ]] && export AGCLUSTER_FORCE_REBUILD=1

tag="${BASE_IMAGE_TAG:-agcluster/base:bookworm}"
suite="${DEBIAN_SUITE:-bookworm}"
ca_bundle="${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
# What the agent needs at run time (tini as PID 1; git, curl and procps for the agent's
# own Bash tool). No compilers: every Python dependency we pin ships wheels.
packages="python3,python3-venv,ca-certificates,tini,git,curl,procps"

host_mirror() {
    # The host already reaches a Debian mirror (maybe a proxy or snapshot); use the same one.
    local url
    url="$(grep -h -o -E 'https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
        /etc/apt/sources.list.d/*.list 2>/dev/null | grep -E '/debian/?$' | head -n1 || true)"
    printf '%s' "${url:-http://deb.debian.org/debian}"
}
mirror="${DEBIAN_MIRROR:-$(host_mirror)}"
security_mirror="${DEBIAN_SECURITY_MIRROR:-${mirror%/debian}/debian-security}"

require_docker
ca_hash="none"
[[ -r "$ca_bundle" ]] && ca_hash="$(sha256sum < "$ca_bundle" | cut -c1-32)"
inputs_hash="$(printf '%s\n' scripts/build-base-image.sh |
    hash_inputs "$here/.." "$suite" "$packages" "$mirror" "$security_mirror" "ca=$ca_hash")"

if image_is_current "$tag" "$inputs_hash"; then
    log "$tag is up to date ($inputs_hash)"
    exit 0
fi

[[ "$(id -u)" == "0" ]] || die "building $tag needs root for debootstrap and chroot (run with sudo)"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (apt-get install debootstrap)"

log "building $tag from $mirror ($suite)"
work="$(mktemp -d /var/tmp/agcluster-base.XXXXXX)"
root="$work/rootfs"
cleanup() {
    # A failed chroot step can leave /proc mounted inside the tree; never rm through it.
    umount -l "$root/proc" 2>/dev/null || true
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

debootstrap --variant=minbase --include="$packages" --components=main "$suite" "$root" "$mirror" \
    > "$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }

# Sources inside the image, security updates included; later apt installs skip docs and
# recommends so derived layers stay small.
cat > "$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security_mirror $suite-security main
EOF
cat > "$root/etc/apt/apt.conf.d/90agcluster" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
cat > "$root/etc/dpkg/dpkg.cfg.d/90agcluster-nodoc" <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
EOF

# Trust the host's extra CAs (a TLS-intercepting proxy's root, for instance): only the
# certificates Debian's own bundle lacks, so a normal host adds nothing.
if [[ -r "$ca_bundle" ]]; then
    python3 - "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt" "$root/usr/local/share/ca-certificates" <<'PY'
import pathlib, re, sys

def certs(path):
    text = pathlib.Path(path).read_text(errors="replace")
    return re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S)

def norm(pem):
    return "".join(pem.split())

host, debian, out = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
known = {norm(c) for c in certs(debian)} if pathlib.Path(debian).exists() else set()
out.mkdir(parents=True, exist_ok=True)
extra = [c for c in certs(host) if norm(c) not in known]
for i, pem in enumerate(extra):
    (out / f"agcluster-host-{i}.crt").write_text(pem + "\n")
print(f"[images] trusting {len(extra)} extra CA certificate(s) from the host", file=sys.stderr)
PY
fi

cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
chroot "$root" /bin/sh -ec '
    export DEBIAN_FRONTEND=noninteractive
    update-ca-certificates >/dev/null 2>&1
    apt-get -qq update
    apt-get -qq -y upgrade >/dev/null 2>&1 || apt-get -y upgrade
    apt-get -qq clean
'
umount "$root/proc"

# Drop what a container never reads: docs, man pages, apt lists and caches, logs.
rm -rf "$root"/usr/share/doc/*/changelog* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/debconf/*-old \
    "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/etc/resolv.conf \
    "$root"/etc/hostname "$root"/etc/machine-id
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
find "$root/usr/share/doc" -type f ! -name copyright -delete 2>/dev/null || true
: > "$root/etc/machine-id"

tar --numeric-owner -C "$root" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . |
    docker import \
        --change "LABEL $HASH_LABEL=$inputs_hash" \
        --change "LABEL org.opencontainers.image.description=\"AgCluster Debian $suite base (debootstrap minbase)\"" \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'CMD ["/bin/bash"]' \
        - "$tag" >/dev/null

log "built $tag ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
