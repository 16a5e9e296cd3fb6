#!/bin/sh
# The agent image's ENTRYPOINT: hand a freshly mounted workspace to the agent user, then
# run the CMD as that user under tini.
#
# On Fly the session's workspace is a Fly Volume mounted at /workspace; a new volume is a
# fresh ext4 filesystem owned by root, and Fly has no mount option to change that, so the
# image starts as root just long enough to give /workspace (the mount point only, never
# recursively: a woken workspace already belongs to the agent) to uid 1000, then drops to
# it for good: no groups, every capability set emptied, no_new_privs.
#
# Started as any other user (the Docker provider runs uid 1000 with every capability
# dropped), there is nothing to hand over and nothing to drop.
set -eu

if [ "$(id -u)" = "0" ]; then
    if [ -d /workspace ] && [ "$(stat -c %u /workspace)" != "1000" ]; then
        chown 1000:1000 /workspace
        chmod 0750 /workspace
    fi
    exec setpriv --reuid=1000 --regid=1000 --init-groups --inh-caps=-all --bounding-set=-all --no-new-privs \
        -- tini -g -- "$@"
fi
exec tini -g -- "$@"
