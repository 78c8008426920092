#!/usr/bin/env bash
# Builds the images the tests run, with no registry: a `FROM scratch` image holding Debian's
# static busybox (sh, httpd, sleep, nc...). Tags it `shoal-test/busybox:latest` in the local
# Docker Engine and writes its `docker save` archive for the native runtime's tests (engines
# before 25 write Docker's format only; the image tests build an OCI layout from it).
#
#   tests/images/build.sh [OUT_DIR]      (default: /var/tmp/shoal-images)
#
# Needs: busybox-static (apt-get install busybox-static), a running Docker Engine.
set -euo pipefail
out="${1:-/var/tmp/shoal-images}"
tag="shoal-test/busybox:latest"
busybox="$(command -v busybox || true)"
if [ -z "$busybox" ] || ! file -L "$busybox" 2>/dev/null | grep -q static; then
  busybox=/bin/busybox
fi
if ! "$busybox" --help >/dev/null 2>&1; then
  echo "tests/images/build.sh: Debian's busybox-static is needed (apt-get install busybox-static)" >&2
  exit 1
fi
mkdir -p "$out"
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$busybox" "$ctx/busybox"
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/mkdir", "-p", "/tmp", "/var/www", "/etc"]
RUN ["/bin/sh", "-c", "echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd && echo 'nobody:x:65534:65534:nobody:/:/bin/false' >> /etc/passwd && echo 'root:x:0:' > /etc/group && echo 'nogroup:x:65534:' >> /etc/group && echo hello from shoal > /var/www/index.html"]
ENV PATH=/bin
CMD ["/bin/sh"]
DOCKERFILE
# The classic builder needs no buildx; the output is the same image either way.
DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" >/dev/null
docker save -o "$out/busybox.tar" "$tag"
echo "built $tag; archive $out/busybox.tar"
