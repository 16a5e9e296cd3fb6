# Upstream AgCluster's agent image, for `python -m bench upstream` only (built by
# scripts/prepare-upstream.sh; the build context is upstream's container/ directory, so
# agent_server.py and requirements.txt are upstream's own, not ours).
#
# It follows upstream's docker/Dockerfile.agent step by step. Where it differs, it is because
# there is no container registry here (or to pin what is measured):
#   - FROM our local Debian bookworm base (Python 3.11, trusts the host's extra CAs) instead
#     of python:3.11-slim;
#   - nodejs + npm from Debian instead of NodeSource's node 20 (deb.nodesource.com);
#   - @anthropic-ai/claude-code pinned (upstream installs the latest);
#   - Python packages in a venv (Debian's python has no system pip), no BuildKit cache mount;
#   - claude-agent-sdk pinned to the version this repository pins (SDK_VERSION), so both
#     sides run the same SDK and bundled CLI; upstream's other requirements are unchanged.
ARG BASE_IMAGE=agcluster/base:bookworm
FROM ${BASE_IMAGE}

ARG SDK_VERSION
ARG CLAUDE_CODE_VERSION=2.1.327
# Network package indexes and npm registry from the host (empty: the tools' defaults). Named
# so pip and npm do not read them themselves when they are empty.
ARG UP_PIP_INDEX_URL=
ARG UP_PIP_EXTRA_INDEX_URL=
ARG UP_NPM_REGISTRY=

ENV LANG=C.UTF-8 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=120 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Upstream's system packages, with Debian's nodejs/npm and python3-venv.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        curl git ca-certificates build-essential procps python3-venv nodejs npm >/dev/null \
    && rm -rf /var/lib/apt/lists/*

# The Claude Code CLI, globally (npm warns that it wants a newer node; it installs and runs).
RUN set -eu; \
    reg="${UP_NPM_REGISTRY:+--registry $UP_NPM_REGISTRY}"; \
    npm install -g --no-audit --no-fund --cafile /etc/ssl/certs/ca-certificates.crt $reg \
        "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}"; \
    claude --version; \
    rm -rf /root/.npm

RUN useradd -m -u 1000 agentuser && \
    mkdir -p /workspace /app && \
    chown -R agentuser:agentuser /workspace /app

# Upstream's container/requirements.txt with only the SDK line pinned (the build fails if
# that line is not there to pin).
COPY requirements.txt /tmp/requirements.txt
RUN set -eu; \
    test -n "${SDK_VERSION}"; \
    grep -Eq '^claude-agent-sdk([<>=!~ ]|$)' /tmp/requirements.txt; \
    sed -Ei "s/^claude-agent-sdk([<>=!~ ].*)?$/claude-agent-sdk==${SDK_VERSION}/" /tmp/requirements.txt; \
    idx="${UP_PIP_INDEX_URL:+--index-url $UP_PIP_INDEX_URL}"; \
    for u in $UP_PIP_EXTRA_INDEX_URL; do idx="$idx --extra-index-url $u"; done; \
    python3 -m venv "$VIRTUAL_ENV"; \
    pip install -q $idx -r /tmp/requirements.txt; \
    rm -rf /tmp/requirements.txt /root/.cache

COPY agent_server.py /app/agent_server.py

USER agentuser
WORKDIR /workspace
EXPOSE 3000

HEALTHCHECK --interval=30s --timeout=10s --start-period=5s --retries=3 \
    CMD curl -f http://localhost:3000/health || exit 1

ENV PYTHONPATH=/app

CMD ["uvicorn", "agent_server:app", "--host", "0.0.0.0", "--port", "3000"]
