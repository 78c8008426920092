#!/usr/bin/env bash
# Side by side with real Docker Swarm on this machine's Docker Engine: the time from
# `service create --replicas N IMAGE sleep 1000` to `service ls` showing N/N, for Swarm
# (`docker swarm init` on the engine) and for shoal running its tasks on the same engine
# (`shoal daemon --runtime docker`), alternating runs; prints each run, the medians and the
# ratio shoal/Swarm. Both are driven by the same docker CLI with `--no-resolve-image` (no
# registry here) and polled the same way.
#
#   cargo bench -p shoal --bench swarm [-- RUNS [REPLICAS]]   (defaults 5 and 100; as root)
#   crates/shoal/benches/swarm-vs-shoal.sh [RUNS] [REPLICAS]  (the same, without cargo bench)
#
# Needs: a running Docker Engine not in a swarm, the image built by tests/images/build.sh,
# and the shoal binary (`cargo bench` passes the one it built in SHOAL; otherwise built here).
set -euo pipefail
runs="${1:-5}"
replicas="${2:-100}"
cd "$(dirname "$0")/../../.."
. crates/shoal/benches/swarm-lib.sh
shoal_pid=""
cleanup() {
  set +e
  docker service rm bench >/dev/null 2>&1
  docker swarm leave --force >/dev/null 2>&1
  if [ -n "$shoal_pid" ]; then
    DOCKER_HOST="unix://$work/shoal.sock" docker service rm bench >/dev/null 2>&1
    kill "$shoal_pid" 2>/dev/null
    wait "$shoal_pid" 2>/dev/null
  fi
  docker ps -aq --filter label=com.shoal.managed=true | xargs -r docker rm -f >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# Creates the service through the docker CLI at $1 (a DOCKER_HOST, empty for the engine),
# waits for N/N, prints the seconds it took, then removes the service and waits until the
# engine has no container of it left.
one_run() {
  local host="$1" label="$2"
  local t0 t1
  t0="$(now)"
  DOCKER_HOST="$host" docker service create -d -q --no-resolve-image --name bench \
    --replicas "$replicas" --stop-grace-period 1s "$image" sleep 1000 >/dev/null
  until [ "$(DOCKER_HOST="$host" docker service ls --filter name=bench --format '{{.Replicas}}')" = "$replicas/$replicas" ]; do
    sleep 0.1
  done
  t1="$(now)"
  DOCKER_HOST="$host" docker service rm bench >/dev/null
  until [ -z "$(docker ps -aq --filter "label=$label")" ]; do sleep 0.2; done
  echo "$t0 $t1" | awk '{ printf "%.2f\n", $2 - $1 }'
}

# Swarm on the engine.
docker swarm init --advertise-addr 127.0.0.1 >/dev/null
# shoal on the same engine, in its own data dir, on the Docker runtime.
"$SHOAL" daemon --data-dir "$work" --runtime docker --hostname bench \
  --cgroup-parent shoal-bench >"$work/daemon.log" 2>&1 &
shoal_pid=$!
until DOCKER_HOST="unix://$work/shoal.sock" docker info >/dev/null 2>&1; do sleep 0.1; done
port=$(( 20000 + RANDOM % 20000 ))
DOCKER_HOST="unix://$work/shoal.sock" docker swarm init \
  --listen-addr "127.0.0.1:$port" --advertise-addr "127.0.0.1:$port" >/dev/null

swarm_times=()
shoal_times=()
for i in $(seq 1 "$runs"); do
  s="$(one_run "" com.docker.swarm.service.name=bench)"
  echo "run $i: swarm $s s"
  swarm_times+=("$s")
  t="$(one_run "unix://$work/shoal.sock" com.shoal.managed=true)"
  echo "run $i: shoal $t s"
  shoal_times+=("$t")
done

ms="$(printf '%s\n' "${swarm_times[@]}" | median)"
mt="$(printf '%s\n' "${shoal_times[@]}" | median)"
echo
echo "service create --replicas $replicas $image sleep 1000 -> $replicas/$replicas running, median of $runs:"
echo "  Docker Swarm (engine $(docker version --format '{{.Server.Version}}')): $ms s"
echo "  shoal --runtime docker:                $mt s"
echo "$mt $ms" | awk '{ printf "  ratio shoal/Swarm: %.2f (goal <= 0.5)\n", $1 / $2 }'
