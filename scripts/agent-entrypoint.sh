#!/bin/sh
# The agent image's ENTRYPOINT: hand a freshly mounted workspace to the agent user, then
# run the CMD as that user under tini, which stays root.
#
# tini is pid 1 and holds the container's environment, machine token included, in
# /proc/1/environ for as long as the machine lives. Run as the agent user it would be
# readable by every tool the agent runs; run as root it is not. So tini keeps root (it only
# reaps and forwards signals) and the privileges are dropped for its child instead.
#
# On Fly the session's workspace is a Fly Volume mounted at /workspace; a new volume is a
# fresh ext4 filesystem owned by root, and Fly has no mount option to change that, so the
# image starts as root just long enough to give /workspace (the mount point only, never
# recursively: a woken workspace already belongs to the agent) to uid 1000, then drops to
# it for good: no groups, every capability set emptied, no_new_privs.
#
# The Docker provider starts it as root with only SETUID, SETGID and SETPCAP (what setpriv
# needs); its volumes already belong to uid 1000, so there is nothing to hand over.
set -eu

if [ "$(id -u)" = "0" ]; then
    if [ -d /workspace ] && [ "$(stat -c %u /workspace)" != "1000" ] && [ -w /workspace ]; then
        chown 1000:1000 /workspace
        chmod 0750 /workspace
    fi
    exec tini -g -- setpriv --reuid=1000 --regid=1000 --init-groups --inh-caps=-all --bounding-set=-all \
        --no-new-privs -- "$@"
fi
# Started unprivileged: nothing to drop (but pid 1 then shares the agent's uid).
exec tini -g -- "$@"
