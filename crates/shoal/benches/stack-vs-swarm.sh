#!/usr/bin/env bash
# Side by side with real Docker Swarm on this machine's Docker Engine: the time from
# `docker stack deploy` of a 10-service stack (2 replicas each, on the stack's default overlay
# network) to every service showing 2/2, for Swarm (`docker swarm init` on the engine) and for
# shoal running its tasks on the same engine (`shoal daemon --runtime docker`), alternating
# runs; then the same file deployed with shoal's own CLI (`shoal stack deploy`). Prints each
# run, the medians and the ratio shoal/Swarm. Same file, same image, same docker CLI; both
# deploys skip the registry (`--resolve-image never`: there is none here).
#
#   cargo bench -p shoal --bench swarm -- stack [RUNS]   (default 5; as root)
#   crates/shoal/benches/stack-vs-swarm.sh [RUNS]    (the same, without cargo bench)
#
# Needs: a running Docker Engine not in a swarm, the image built by tests/images/build.sh,
# and the shoal binary (`cargo bench` passes the one it built in SHOAL; otherwise built here).
set -euo pipefail
runs="${1:-5}"
services=10
replicas=2
cd "$(dirname "$0")/../../.."
. crates/shoal/benches/swarm-lib.sh
shoal_pid=""
sock="unix://$work/shoal.sock"
cleanup() {
  set +e
  docker stack rm bench >/dev/null 2>&1
  docker swarm leave --force >/dev/null 2>&1
  if [ -n "$shoal_pid" ]; then
    DOCKER_HOST="$sock" docker stack rm bench >/dev/null 2>&1
    kill "$shoal_pid" 2>/dev/null
    wait "$shoal_pid" 2>/dev/null
  fi
  docker ps -aq --filter label=com.shoal.managed=true | xargs -r docker rm -f >/dev/null 2>&1
  # The stack's overlay leaves namespace mounts under the data dir.
  awk -v w="$work" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

{
  echo 'version: "3.8"'
  echo 'services:'
  for i in $(seq 1 "$services"); do
    echo "  s$i:"
    echo "    image: $image"
    echo '    command: ["sleep", "100000"]'
    echo '    stop_grace_period: 1s'
    echo '    deploy:'
    echo "      replicas: $replicas"
  done
} >"$work/stack.yml"

# Every service of the stack at $1 (a DOCKER_HOST, empty for the engine) shows N/N.
converged() {
  local got
  got="$(DOCKER_HOST="$1" docker stack services bench --format '{{.Replicas}}' 2>/dev/null |
    grep -c "^$replicas/$replicas" || true)"
  [ "$got" = "$services" ]
}

# Deploys with `$3` (docker or shoal) at $1, waits until converged, prints the seconds it
# took, then removes the stack and waits until the engine has no container of it left and
# the stack's network is gone.
one_run() {
  local host="$1" label="$2" client="$3"
  local t0 t1
  t0="$(now)"
  if [ "$client" = docker ]; then
    DOCKER_HOST="$host" docker stack deploy --detach=true --resolve-image never \
      -c "$work/stack.yml" bench >/dev/null
  else
    "$SHOAL" -H "$host" stack deploy --resolve-image never -c "$work/stack.yml" bench >/dev/null
  fi
  until converged "$host"; do sleep 0.1; done
  t1="$(now)"
  DOCKER_HOST="$host" docker stack rm bench >/dev/null
  until [ -z "$(docker ps -aq --filter "label=$label")" ] &&
    ! DOCKER_HOST="$host" docker network ls --format '{{.Name}}' | grep -q '^bench_'; do
    sleep 0.2
  done
  echo "$t0 $t1" | awk '{ printf "%.2f\n", $2 - $1 }'
}

docker swarm init --advertise-addr 127.0.0.1 >/dev/null
"$SHOAL" daemon --data-dir "$work" --runtime docker --hostname bench \
  --cgroup-parent shoal-bench >"$work/daemon.log" 2>&1 &
shoal_pid=$!
until DOCKER_HOST="$sock" docker info >/dev/null 2>&1; do sleep 0.1; done
port=$(( 20000 + RANDOM % 20000 ))
DOCKER_HOST="$sock" docker swarm init \
  --listen-addr "127.0.0.1:$port" --advertise-addr "127.0.0.1:$port" >/dev/null

swarm_times=()
shoal_times=()
own_times=()
for i in $(seq 1 "$runs"); do
  s="$(one_run "" com.docker.stack.namespace=bench docker)"
  echo "run $i: swarm (docker stack deploy)       $s s"
  swarm_times+=("$s")
  t="$(one_run "$sock" com.shoal.managed=true docker)"
  echo "run $i: shoal (docker stack deploy)       $t s"
  shoal_times+=("$t")
  o="$(one_run "$sock" com.shoal.managed=true shoal)"
  echo "run $i: shoal (shoal stack deploy)        $o s"
  own_times+=("$o")
done

ms="$(printf '%s\n' "${swarm_times[@]}" | median)"
mt="$(printf '%s\n' "${shoal_times[@]}" | median)"
mo="$(printf '%s\n' "${own_times[@]}" | median)"
echo
echo "stack deploy of $services services x $replicas replicas -> all running, median of $runs:"
echo "  Docker Swarm (engine $(docker version --format '{{.Server.Version}}')), docker CLI: $ms s"
echo "  shoal --runtime docker, docker CLI:     $mt s"
echo "  shoal --runtime docker, shoal CLI:      $mo s"
echo "$mt $ms" | awk '{ printf "  ratio shoal/Swarm (docker CLI): %.2f\n", $1 / $2 }'
echo "$mo $ms" | awk '{ printf "  ratio shoal/Swarm (shoal CLI):  %.2f\n", $1 / $2 }'
