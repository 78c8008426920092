# What swarm-vs-shoal.sh and stack-vs-swarm.sh share, sourced by both from the repository's
# root: the checks before a run, the shoal binary, the temp dir, and the helpers that time
# and summarise runs. Sets `image`, `SHOAL`, `work`.
image="shoal-test/busybox:latest"
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != "inactive" ]; then
  echo "the engine is already in a swarm; leave it first (docker swarm leave --force)" >&2
  exit 1
fi
docker image inspect "$image" >/dev/null 2>&1 || tests/images/build.sh >/dev/null
if [ -z "${SHOAL:-}" ]; then
  cargo build --release -q -p shoal
  SHOAL="${CARGO_TARGET_DIR:-target}/release/shoal"
fi
work="$(mktemp -d)"

now() { date +%s.%N; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
