#!/bin/bash
# Build the test rootfs: busybox-static in a 16 MiB ext4 image, made without loop mounts.
# Its /sbin/init prints FLINT_GUEST_INIT_OK, signals the boot timer device (MMIO 0xC0000000,
# byte 123, Firecracker's convention) and reboots, so the VMM exits.
# Needs Debian packages busybox-static and e2fsprogs (installed when missing).
# Usage: mkrootfs.sh OUT.ext4
# Adapted from shared/guest/mkrootfs.sh; the /sbin/init text (the INIT here-document)
# must stay byte-identical to it for fetch-or-build.sh to reuse the prebuilt image.
set -euo pipefail
OUT=${1:?usage: mkrootfs.sh OUT.ext4}
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
rm -f "$OUT"
mkfs.ext4 -q -F -L flintroot -O ^has_journal -d "$D" "$OUT" 16M
