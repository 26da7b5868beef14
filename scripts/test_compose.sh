#!/usr/bin/env bash
# make test-compose: the real docker-compose.yml, run for real, on loopback only.
#
# 1. installs docker.io, docker-compose (v1.29) and debootstrap with apt when missing;
# 2. starts its own dockerd (--bridge=none --iptables=false; exec-root, socket and pidfile
#    under a temp dir, data-root in .ci/cache/compose/docker so images and build layers
#    are reused by the next run) and stops it by PID at the end, whatever happens;
# 3. builds stand-in base images (no image can be pulled here) with debootstrap from the
#    Debian mirror apt uses, imported under the tags the compose file names:
#    python:3.11-slim (Debian's python3 is 3.11), redis:7.2, prom/prometheus:v2.53.2;
#    the root filesystems are cached as tarballs in .ci/cache/compose/ (gitignored);
# 4. builds a wheelhouse on the host (pip wheel) and the project image from the real
#    Dockerfile with build network host (no network is used inside the build);
# 5. `docker-compose -f docker-compose.yml -f docker-compose.ci.yml up -d`, waits until
#    every healthcheck is healthy and fills appear in Redis, checks no Redis ACL denial,
#    checks Prometheus scrapes every service, then `down -v` within 10 s;
# 6. removes the containers, volumes and dangling images it made (tagged images stay in
#    the cache: `rm -rf .ci/cache` forgets everything), stops dockerd, prints its wall time.
# Never a bridge network or a private-range address: every container uses the host's
# network namespace and listens on 127.0.0.1 (docker-compose.ci.yml).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
T0=$(date +%s.%N)
PROJECT=edgebus-ci
CACHE=$ROOT/.ci/cache/compose
SERVICES=(parameter_server feature_bus model_router risk_harmoniser execution telemetry)
REDIS_PORT=16379
PROM_PORT=19090
HEALTHY_TIMEOUT_S=${COMPOSE_HEALTHY_TIMEOUT_S:-180}
DOWN_LIMIT_S=10

say() { printf '[test-compose %5.1fs] %s\n' "$(elapsed)" "$*"; }
elapsed() { awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN { print a - b }'; }
fail() { say "FAILED: $*"; exit 1; }
declare -A PHASE

[ "$(id -u)" = 0 ] || fail "needs root (it installs packages, runs dockerd and debootstrap)"

# ---- 1. tools ------------------------------------------------------------------------
t=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
if ! command -v dockerd >/dev/null || ! command -v docker-compose >/dev/null \
  || ! command -v debootstrap >/dev/null || ! [ -x /usr/bin/docker ]; then
  # Package scripts must not start a system dockerd (it would create docker0 on a
  # private range): policy-rc.d 101 forbids service starts during the install.
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io docker-compose debootstrap \
    > /dev/null || fail "apt-get install docker.io docker-compose debootstrap failed"
  [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
fi
PHASE[install]=$(( $(date +%s) - t ))
# The Debian client matches the Debian daemon (a newer client may sit first in PATH).
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker)
say "tools: $($DOCKER --version 2>/dev/null | head -1); $(docker-compose version --short 2>/dev/null)"

# ---- 2. our own dockerd, stopped by PID on exit ----------------------------------------
WORK=$(mktemp -d /tmp/edgebus-compose.XXXXXX)
DOCKERD_PID=""
STACK_UP=""
MADE_WHEELHOUSE=""
ENV_FILE=$WORK/ci.env
COMPOSE=(docker-compose --env-file "$ENV_FILE" -p "$PROJECT" -f docker-compose.yml -f docker-compose.ci.yml)

cleanup() {
  local rc=$?
  set +e
  if [ -n "$STACK_UP" ]; then
    if [ "$rc" != 0 ]; then
      say "logs of the stack (last 30 lines each):"
      "${COMPOSE[@]}" logs --no-color --tail 30 2>&1 | sed 's/^/    /'
    fi
    "${COMPOSE[@]}" down -v --remove-orphans -t 5 >/dev/null 2>&1
  fi
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    kill -TERM "$DOCKERD_PID"
    for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then
      say "dockerd (pid $DOCKERD_PID) ignored SIGTERM for 20 s; killing it"
      kill -KILL "$DOCKERD_PID"
    fi
    wait "$DOCKERD_PID" 2>/dev/null
    say "dockerd (pid $DOCKERD_PID) stopped"
    # Its containerd and shims run under our exec-root; none may outlive the test.
    for pid in $(pgrep -f -- "$WORK/exec"); do kill -KILL "$pid" 2>/dev/null; done
  fi
  [ "$rc" = 0 ] || [ ! -f "$WORK/dockerd.log" ] || tail -5 "$WORK/dockerd.log"
  # Whatever dockerd left mounted under our temp dir (overlays, netns) goes first.
  grep -o -e " $WORK[^ ]*" -e " $CACHE/docker[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf --one-file-system "$WORK"
  if [ -n "$MADE_WHEELHOUSE" ]; then rm -rf "$ROOT/wheelhouse"; else rm -f "$ROOT"/wheelhouse/edgebus-*.whl; fi
  if [ "$rc" = 0 ]; then
    say "PASSED in $(printf '%.1f' "$(elapsed)") s wall time"
  else
    say "FAILED (exit $rc) after $(printf '%.1f' "$(elapsed)") s"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t=$(date +%s)
mkdir -p "$CACHE"
export DOCKER_HOST=unix://$WORK/docker.sock
dockerd --bridge=none --iptables=false --ip6tables=false --ip-masq=false --ip-forward=false \
  --data-root "$CACHE/docker" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" \
  --host "$DOCKER_HOST" > "$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 150); do
  $DOCKER version >/dev/null 2>&1 && break
  kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -20 "$WORK/dockerd.log"; fail "dockerd exited"; }
  sleep 0.2
done
$DOCKER version >/dev/null 2>&1 || { tail -20 "$WORK/dockerd.log"; fail "dockerd did not answer in 30 s"; }
PHASE[dockerd]=$(( $(date +%s) - t ))
say "dockerd pid $DOCKERD_PID on $DOCKER_HOST (storage $($DOCKER info -f '{{.Driver}}'))"

# ---- 3. stand-in base images ---------------------------------------------------------
t=$(date +%s)
MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | grep -v '^[[:space:]]*#' \
  | grep -o -E 'https?://[^ ]+' | grep -v -- '-security' | head -1 || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}

# rootfs NAME PACKAGES [SETUP]: a cached minbase bookworm tarball with PACKAGES;
# SETUP runs inside the root filesystem (chroot) before it is packed.
rootfs() {
  local name=$1 packages=$2 setup=${3:-true}
  local key
  key=$(printf '%s|%s|%s' "$packages" "$setup" v1 | sha256sum | cut -c1-12)
  local tarball=$CACHE/rootfs-$name-$key.tar
  ROOTFS_KEY=$key
  if [ ! -s "$tarball" ]; then
    local dir=$WORK/rootfs-$name
    say "debootstrap $name ($packages) from $MIRROR"
    debootstrap --variant=minbase --include="$packages" bookworm "$dir" "$MIRROR" \
      > "$WORK/debootstrap-$name.log" 2>&1 \
      || { tail -20 "$WORK/debootstrap-$name.log"; fail "debootstrap of $name failed"; }
    chroot "$dir" /bin/sh -c "$setup" || fail "setting up the $name root filesystem failed"
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/tmp/*
    tar --numeric-owner -C "$dir" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf --one-file-system "$dir"
    rm -f "$CACHE"/rootfs-"$name"-*.tar.tmp
  else
    say "cached root filesystem $(basename "$tarball")"
  fi
  ROOTFS=$tarball
}

# stand_in TAG [--change ...]: import the last rootfs under TAG unless the daemon's
# cache already holds that very import (label edgebus.rootfs).
stand_in() {
  local tag=$1
  shift
  if [ "$($DOCKER image inspect -f '{{index .Config.Labels "edgebus.rootfs"}}' "$tag" 2>/dev/null)" \
    = "$ROOTFS_KEY" ]; then
    return
  fi
  $DOCKER import --change "LABEL edgebus.rootfs=$ROOTFS_KEY" "$@" "$ROOTFS" "$tag" > /dev/null \
    || fail "docker import of $tag failed"
}

rootfs python "python3,python3-venv"
stand_in python:3.11-slim \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]'

rootfs services "redis-server,prometheus,wget" \
  'mkdir -p /data /prometheus && chown redis:redis /data && chown 65534:65534 /prometheus'
stand_in redis:7.2 --change 'WORKDIR /data' --change 'CMD ["redis-server"]'
stand_in prom/prometheus:v2.53.2 --change 'USER nobody' --change 'WORKDIR /prometheus' \
  --change 'ENTRYPOINT ["/bin/prometheus"]' \
  --change 'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]'
PHASE[base_images]=$(( $(date +%s) - t ))
say "stand-in images: python:3.11-slim, redis:7.2, prom/prometheus:v2.53.2"

# ---- 4. wheelhouse and the project image ------------------------------------------------
t=$(date +%s)
PY=""
for candidate in "$ROOT/.venv/bin/python" python3.11 python3; do
  if command -v "$candidate" >/dev/null \
    && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    PY=$candidate
    break
  fi
done
[ -n "$PY" ] || fail "no Python 3.11 on the host: the wheelhouse must match the image's CPython 3.11"
[ -d wheelhouse ] || MADE_WHEELHOUSE=1
rm -f wheelhouse/edgebus-*.whl
# async-timeout: redis-py needs it on CPython < 3.11.3, and the image's Python (Debian's
# 3.11.2 in the stand-in) may be older than the host's, so the host's resolver skips it.
"$PY" -m pip wheel -q --disable-pip-version-check -w wheelhouse . 'setuptools>=68' wheel \
  'async-timeout>=4.0.3' > "$WORK/wheel.log" 2>&1 \
  || { grep -v '^WARNING: Location' "$WORK/wheel.log" | tail -20; fail "pip wheel of the project and its dependencies failed"; }
# The image builds the project from its sources; the wheelhouse only feeds dependencies.
rm -f wheelhouse/edgebus-*.whl
say "wheelhouse: $(find wheelhouse -name '*.whl' | wc -l) wheels ($(du -sh wheelhouse | cut -f1))"
PHASE[wheelhouse]=$(( $(date +%s) - t ))

t=$(date +%s)
$DOCKER build -q --network host --build-arg WHEELHOUSE=wheelhouse -t edgebus:local . \
  > "$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; fail "docker build failed"; }
PHASE[build]=$(( $(date +%s) - t ))
say "built edgebus:local from ./Dockerfile ($($DOCKER image inspect -f '{{.Size}}' edgebus:local | awk '{printf "%.0f MB", $1/1e6}'))"

# ---- 5. the stack ------------------------------------------------------------------------
t=$(date +%s)
scripts/compose_env.sh "$ENV_FILE" > /dev/null
REDIS_ADMIN_PASSWORD=$(grep '^REDIS_ADMIN_PASSWORD=' "$ENV_FILE" | cut -d= -f2)
export REDIS_ADMIN_PASSWORD
STACK_UP=1
# Leftovers of an interrupted run (the daemon's data is cached) go first.
"${COMPOSE[@]}" down -v --remove-orphans -t 2 > /dev/null 2>&1 || true
"${COMPOSE[@]}" up -d --no-build > "$WORK/up.log" 2>&1 \
  || { cat "$WORK/up.log"; fail "docker-compose up failed"; }

mapfile -t IDS < <("${COMPOSE[@]}" ps -q)
[ "${#IDS[@]}" = $(( ${#SERVICES[@]} + 2 )) ] || fail "expected $(( ${#SERVICES[@]} + 2 )) containers, got ${#IDS[@]}"
REDIS_ID=$("${COMPOSE[@]}" ps -q redis)
deadline=$(( $(date +%s) + HEALTHY_TIMEOUT_S ))
while :; do
  states=$($DOCKER inspect -f '{{index .Config.Labels "com.docker.compose.service"}}={{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "${IDS[@]}" | sort | tr '\n' ' ')
  all=1
  for pair in $states; do
    case ${pair#*=} in
      healthy) ;;
      exited|dead) fail "${pair%%=*} is ${pair#*=}" ;;
      *) all="" ;;
    esac
  done
  [ -n "$all" ] && break
  [ "$(date +%s)" -lt "$deadline" ] || fail "not healthy after ${HEALTHY_TIMEOUT_S} s: $states"
  sleep 1
done
PHASE[healthy]=$(( $(date +%s) - t ))
say "all healthy: $states"

rcli() {
  REDISCLI_AUTH=$REDIS_ADMIN_PASSWORD "$DOCKER" exec -e REDISCLI_AUTH "$REDIS_ID" \
    redis-cli --user admin -p "$REDIS_PORT" "$@"
}
t=$(date +%s)
deadline=$(( $(date +%s) + 60 ))
until [ "$(rcli XLEN fills)" -gt 0 ] 2>/dev/null; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "no fills in Redis after 60 s (orders: $(rcli XLEN orders))"
  sleep 1
done
PHASE[fills]=$(( $(date +%s) - t ))
say "Redis: $(for s in md.ticks features signals orders fills dlq; do printf '%s=%s ' "$s" "$(rcli XLEN "$s")"; done)"
denials=$(rcli ACL LOG 10)
[ -z "$denials" ] || fail "Redis ACL denied a service command: $denials"
say "Redis ACL log: no denial (every service ran as its own least-privilege user)"

t=$(date +%s)
deadline=$(( $(date +%s) + 30 ))
until python3 - "$PROM_PORT" "${SERVICES[@]}" <<'EOF'
import json, sys, urllib.request
port, wanted = sys.argv[1], set(sys.argv[2:])
doc = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets", timeout=3))
up = {t["labels"].get("service") for t in doc["data"]["activeTargets"]
      if t["labels"].get("job") == "edgebus" and t["health"] == "up"}
missing = wanted - up
print("prometheus: up " + ", ".join(sorted(up & wanted)) + ("; not yet: " + ", ".join(sorted(missing)) if missing else ""))
sys.exit(1 if missing else 0)
EOF
do
  [ "$(date +%s)" -lt "$deadline" ] || fail "Prometheus is not scraping every service after 30 s"
  sleep 1
done
PHASE[scrape]=$(( $(date +%s) - t ))
if [ -f dashboards/alerts.yml ]; then
  groups=$(curl -s "http://127.0.0.1:$PROM_PORT/api/v1/rules" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]["groups"]))')
  [ "$groups" -gt 0 ] || fail "dashboards/alerts.yml exists but Prometheus loaded no rule group"
  say "Prometheus loaded $groups rule group(s) from dashboards/alerts.yml"
fi

t0_down=$(date +%s.%N)
"${COMPOSE[@]}" down -v --remove-orphans > "$WORK/down.log" 2>&1 \
  || { cat "$WORK/down.log"; fail "docker-compose down failed"; }
STACK_UP=""
down_s=$(awk -v a="$(date +%s.%N)" -v b="$t0_down" 'BEGIN { printf "%.1f", a - b }')
say "down -v in $(printf '%.1f' "$down_s") s"
awk -v d="$down_s" -v l="$DOWN_LIMIT_S" 'BEGIN { exit !(d < l) }' || fail "down -v took ${down_s} s (limit ${DOWN_LIMIT_S} s)"
left=$($DOCKER ps -aq | wc -l)
[ "$left" = 0 ] || fail "$left container(s) left after down"
[ -z "$($DOCKER volume ls -q)" ] || fail "volumes left after down -v: $($DOCKER volume ls -q | tr '\n' ' ')"
# Earlier builds of edgebus:local, now untagged; the tagged images stay as the cache.
$DOCKER image prune -f > /dev/null

summary=""
for k in install dockerd base_images wheelhouse build healthy fills scrape; do
  summary+="$k ${PHASE[$k]:-0}s, "
done
say "phases: ${summary%, }, down ${down_s%.*}s"
