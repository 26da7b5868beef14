#!/bin/sh
# Entry point of the compose `redis` service: render the ACL file from the environment
# (into the container's /tmp, never into the data volume), then run redis-server with
# AOF on. REDIS_PORT and REDIS_BIND choose where it listens (6379 on all interfaces of
# the container's own network by default; the CI override uses host loopback).
set -eu
here=$(dirname "$0")
acl=/tmp/edgebus-users.acl
sh "$here/render_acl.sh" "$here/users.acl.template" "$acl"
exec redis-server \
  --port "${REDIS_PORT:-6379}" \
  --bind "${REDIS_BIND:-0.0.0.0}" \
  --aclfile "$acl" \
  --dir /data \
  --appendonly yes \
  --appendfsync everysec \
  --save "" \
  "$@"
