#!/usr/bin/env bash
# Builds the local test/demo images (no registry is reachable): moat-busybox:1 from Debian's static busybox.
# Skips an image that is already present. Idempotent; safe to run concurrently (a lock serialises builders).
set -euo pipefail

IMAGE=${MOAT_BUSYBOX_IMAGE:-moat-busybox:1}
say() { echo "build-images: $*" >&2; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi
exec 8>/tmp/moat-build-images.lock
command -v flock >/dev/null 2>&1 && flock -w 300 8 || true
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi

BUSYBOX=""
for c in /bin/busybox /usr/bin/busybox; do
  if [ -x "$c" ]; then BUSYBOX=$c; break; fi
done
if [ -z "$BUSYBOX" ]; then
  say "no busybox binary; install busybox-static (scripts/ensure-dockerd.sh does)"
  exit 1
fi
if ! file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' && ldd "$BUSYBOX" >/dev/null 2>&1; then
  say "$BUSYBOX is dynamically linked; install busybox-static"
  exit 1
fi

ROOT=$(mktemp -d /tmp/moat-busybox-root.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT/bin" "$ROOT/sbin" "$ROOT/usr/bin" "$ROOT/usr/sbin" "$ROOT/etc" "$ROOT/tmp" "$ROOT/www" \
  "$ROOT/proc" "$ROOT/sys" "$ROOT/dev" "$ROOT/root" "$ROOT/var/run"
chmod 1777 "$ROOT/tmp"
cp "$BUSYBOX" "$ROOT/bin/busybox"
chroot "$ROOT" /bin/busybox --install -s /bin
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$ROOT/etc/group"
printf 'moat test image\n' >"$ROOT/www/index.html"
say "importing $IMAGE"
tar -C "$ROOT" -c . | docker import \
  --change 'CMD ["/bin/sh"]' \
  --change 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' \
  --change 'WORKDIR /www' \
  - "$IMAGE" >/dev/null
say "built $IMAGE"
