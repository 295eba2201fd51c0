#!/bin/bash
# Build the test rootfs: busybox-static in a 16 MiB ext4 image, made without loop mounts.
# Its /sbin/init prints FLINT_GUEST_INIT_OK, signals the boot timer device (MMIO 0xC0000000,
# byte 123, Firecracker's convention) and reboots, so the VMM exits.
# Needs Debian packages busybox-static and e2fsprogs (installed when missing).
# Usage: mkrootfs.sh OUT.ext4 [--agent FLINT_AGENT [--handler FILE]]
#   --agent: a function rootfs (docs/agent-protocol.md): the static guest/agent/out/flint-agent goes to
#   /sbin/flint-agent and /sbin/init, after the same first lines, keeps it running (restarted if it exits)
#   instead of rebooting; --handler FILE becomes /var/flint/handler (default: a shell script that echoes
#   its stdin). The default rootfs (no --agent) is unchanged.
# Adapted from shared/guest/mkrootfs.sh; the /sbin/init text (the INIT here-document)
# must stay byte-identical to it for fetch-or-build.sh to reuse the prebuilt image.
set -euo pipefail
OUT=${1:?usage: mkrootfs.sh OUT.ext4 [--agent FLINT_AGENT [--handler FILE]]}
shift
AGENT=; HANDLER=
while [ $# -gt 0 ]; do
  case "$1" in
    --agent) AGENT=${2:?--agent needs a path}; shift 2;;
    --handler) HANDLER=${2:?--handler needs a path}; shift 2;;
    *) echo "mkrootfs: unknown argument $1" >&2; exit 2;;
  esac
done
if [ -n "$HANDLER" ] && [ -z "$AGENT" ]; then echo "mkrootfs: --handler needs --agent" >&2; exit 2; fi
if [ -n "$AGENT" ] && ! [ -x "$AGENT" ]; then echo "mkrootfs: $AGENT is not an executable (build it: guest/agent/build.sh)" >&2; exit 2; fi
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
BUSYBOX=${BUSYBOX:-/bin/busybox}
if ! [ -x "$BUSYBOX" ] || ! command -v mkfs.ext4 >/dev/null || ldd "$BUSYBOX" >/dev/null 2>&1; then
  echo "mkrootfs: apt-get install busybox-static e2fsprogs"
  $SUDO apt-get install -y --no-install-recommends busybox-static e2fsprogs >/dev/null
fi
echo "mkrootfs: building $OUT (busybox $BUSYBOX, mkfs.ext4 -d)"
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
mkdir -p "$D"/{bin,sbin,proc,sys,dev,tmp,etc,root}
cp "$BUSYBOX" "$D/bin/busybox"
for a in $("$D/bin/busybox" --list); do [ -e "$D/bin/$a" ] || ln -s busybox "$D/bin/$a"; done
cat > "$D/sbin/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc 2>/dev/null
echo "FLINT_GUEST_INIT_OK uptime=$(cut -d' ' -f1 /proc/uptime)"
devmem 0xC0000000 8 123 2>/dev/null
if grep -q flint_shell /proc/cmdline; then exec /bin/sh; fi
reboot -f
INIT
chmod 755 "$D/sbin/init"
if [ -n "$AGENT" ]; then
  # A function rootfs: a different /sbin/init (the INIT text above stays the default image's recipe).
  install -m 755 "$AGENT" "$D/sbin/flint-agent"
  mkdir -p "$D/var/flint"
  if [ -n "$HANDLER" ]; then
    install -m 755 "$HANDLER" "$D/var/flint/handler"
  else
    printf '#!/bin/sh\nexec cat\n' > "$D/var/flint/handler"
    chmod 755 "$D/var/flint/handler"
  fi
  cat > "$D/sbin/init" <<'AGENT_INIT'
#!/bin/sh
mount -t proc proc /proc 2>/dev/null
echo "FLINT_GUEST_INIT_OK uptime=$(cut -d' ' -f1 /proc/uptime)"
devmem 0xC0000000 8 123 2>/dev/null
if grep -q flint_shell /proc/cmdline; then exec /bin/sh; fi
# flint-agent reads flint.port=, flint.handler=, flint.timeout_ms= from /proc/cmdline itself
while :; do
  /sbin/flint-agent
  echo "flint-agent exited with status $?; restarting" >&2
  sleep 1
done
AGENT_INIT
  chmod 755 "$D/sbin/init"
fi
rm -f "$OUT"
mkfs.ext4 -q -F -L flintroot -O ^has_journal -d "$D" "$OUT" 16M
