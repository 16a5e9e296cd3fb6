# AgCluster control plane: REST API, SSE streams, model relay and the dashboard. Its CMD
# drives agent containers through the Docker provider (docker-compose.local.yml; it needs
# the Docker socket: read the warning there); on Fly, fly.toml runs it with the Fly
# Machines provider instead (docs/FLY.md).
#
#   scripts/build-images.sh control                       # `make images`, no public registry
#   fly deploy                                            # Fly's remote builder, defaults below
#   docker build -f Dockerfile -t agcluster/control:latest .
#
# The dashboard's browser libraries (static_ui/package-lock.json) are installed by npm in a
# build stage, so every image carries them whatever the machine that built it had.
ARG BASE_IMAGE=python:3.11-slim-bookworm
ARG UI_BUILDER_IMAGE=node:20-bookworm-slim

FROM ${UI_BUILDER_IMAGE} AS ui
# A Debian base without npm (the registry-free `make images` path) gets Debian's.
ARG AGC_NPM_REGISTRY=
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
RUN set -eu; \
    if ! command -v npm >/dev/null 2>&1; then \
        apt-get update -qq && apt-get install -y -qq --no-install-recommends npm ca-certificates >/dev/null \
        && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /ui
COPY static_ui/package.json static_ui/package-lock.json ./
RUN set -eu; \
    npm ci --omit=dev --no-audit --no-fund --ignore-scripts ${AGC_NPM_REGISTRY:+--registry=$AGC_NPM_REGISTRY}; \
    test -d node_modules/marked && test -d node_modules/dompurify

FROM ${BASE_IMAGE}

ARG AGC_PIP_INDEX_URL=
ARG AGC_PIP_EXTRA_INDEX_URL=

ENV LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=120 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    VIRTUAL_ENV=/opt/agcluster/venv \
    PATH=/opt/agcluster/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

RUN set -eu; \
    if ! dpkg -s tini >/dev/null 2>&1; then \
        apt-get update -qq && apt-get install -y -qq --no-install-recommends tini >/dev/null \
        && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; \
    fi; \
    useradd --uid 1000 --user-group --no-create-home --home-dir /data --shell /usr/sbin/nologin agcluster; \
    install -d -o agcluster -g agcluster -m 0700 /data

# The control plane never runs the Claude CLI, so the SDK (and its ~350 MB bundled binary)
# stays out of this image.
COPY pyproject.toml scripts/pyproject-deps.py /tmp/agc-build/
RUN set -eu; \
    idx="${AGC_PIP_INDEX_URL:+--index-url $AGC_PIP_INDEX_URL}"; \
    for u in $AGC_PIP_EXTRA_INDEX_URL; do idx="$idx --extra-index-url $u"; done; \
    python3 -m venv "$VIRTUAL_ENV"; \
    python3 /tmp/agc-build/pyproject-deps.py /tmp/agc-build/pyproject.toml --exclude claude-agent-sdk \
        > /tmp/agc-build/requirements.txt; \
    pip install -q $idx --prefer-binary -r /tmp/agc-build/requirements.txt; \
    rm -rf /tmp/agc-build /root/.cache

# Editable from /opt/agcluster/app: presets/ and static_ui/ are found next to control/,
# exactly as in a development checkout.
COPY pyproject.toml /opt/agcluster/app/
COPY wire /opt/agcluster/app/wire
COPY stubs /opt/agcluster/app/stubs
COPY presets /opt/agcluster/app/presets
COPY static_ui /opt/agcluster/app/static_ui
COPY --from=ui /ui/node_modules /opt/agcluster/app/static_ui/node_modules
COPY control /opt/agcluster/app/control
RUN set -eu; \
    idx="${AGC_PIP_INDEX_URL:+--index-url $AGC_PIP_INDEX_URL}"; \
    for u in $AGC_PIP_EXTRA_INDEX_URL; do idx="$idx --extra-index-url $u"; done; \
    pip install -q $idx --no-deps -e /opt/agcluster/app; \
    python3 -m compileall -q /opt/agcluster/app/control /opt/agcluster/app/wire /opt/agcluster/app/stubs; \
    agcluster --help >/dev/null; \
    rm -rf /root/.cache /tmp/*

LABEL org.opencontainers.image.title="agcluster-control" \
      org.opencontainers.image.description="AgCluster control plane (API, relay, dashboard)"

# Binding 0.0.0.0 inside the container is what lets a published port work. With
# AUTH_MODE=none the control plane refuses that unless AGCLUSTER_ALLOW_PUBLIC_BIND=1, which
# is deliberately not set here: docker-compose.local.yml sets it together with publishing
# the port on the host's loopback only. AGCLUSTER_IN_DOCKER tells the Docker provider to
# reach agents by container name on the shared network.
ENV HOME=/data \
    DATABASE_PATH=/data/agcluster.db \
    API_HOST=0.0.0.0 \
    API_PORT=8000 \
    CONTAINER_PROVIDER=docker \
    AGCLUSTER_IN_DOCKER=1

USER agcluster
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os,sys,urllib.request as u; sys.exit(0 if u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('API_PORT', '8000'), timeout=4).status == 200 else 1)"]

ENTRYPOINT ["tini", "--"]
CMD ["agcluster", "serve", "--host", "0.0.0.0", "--provider", "docker"]
