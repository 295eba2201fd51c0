#!/bin/bash
# Build the Flint test guest kernel (vmlinux) from Debian's linux-source-6.1:
# `make tinyconfig` + kernel/minimal.fragment + kernel/minimal-fast.fragment +
# kernel/extras.fragment, with kernel/*.patch applied. About 4-7 minutes on 2 cores.
# Usage: build-kernel.sh OUTDIR        (writes OUTDIR/vmlinux and OUTDIR/config)
#        build-kernel.sh --variant devices OUTDIR
#          the same recipe plus kernel/variants/devices.fragment (ACPI, PCI, virtio-pci,
#          pmem/DAX, virtio-mem, memory hotplug, VMGenID); fails when an option that
#          fragment asks for did not survive olddefconfig (a missing dependency).
# Env: LINUX_SRC_TAR (default /usr/src/linux-source-6.1.tar.xz), JOBS (default nproc).
# Adapted from shared/guest/build-kernel.sh: same recipe, plus progress messages, no
# apt-get when the packages are already there, sudo when not root, and a check of the
# resulting .config against kernel/config.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VARIANT=
if [ "${1:-}" = --variant ]; then VARIANT=${2:?usage: build-kernel.sh [--variant NAME] OUTDIR}; shift 2; fi
OUT=${1:?usage: build-kernel.sh [--variant NAME] OUTDIR}
FRAGMENTS=("$HERE"/kernel/minimal.fragment "$HERE"/kernel/minimal-fast.fragment "$HERE"/kernel/extras.fragment)
if [ -n "$VARIANT" ]; then
  VFRAG="$HERE/kernel/variants/$VARIANT.fragment"
  [ -f "$VFRAG" ] || { echo "build-kernel: no variant $VFRAG" >&2; exit 1; }
  FRAGMENTS+=("$VFRAG")
fi
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
TAR=${LINUX_SRC_TAR:-/usr/src/linux-source-6.1.tar.xz}
JOBS=${JOBS:-$(nproc)}
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo

PKGS="linux-source-6.1 build-essential flex bison bc libelf-dev libssl-dev"
missing=
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "build-kernel: apt-get install$missing"
  $SUDO apt-get install -y --no-install-recommends $missing >/dev/null
fi
[ -f "$TAR" ] || { echo "build-kernel: $TAR not found" >&2; exit 1; }

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
echo "build-kernel: unpacking $TAR"
tar -xf "$TAR" -C "$W"
SRC=$(find "$W" -mindepth 1 -maxdepth 1 -type d | head -1)
cd "$SRC"
for p in "$HERE"/kernel/*.patch; do echo "build-kernel: patch $(basename "$p")"; patch -p1 -s < "$p"; done
echo "build-kernel: tinyconfig + fragments"
make O="$W/b" tinyconfig >/dev/null
scripts/kconfig/merge_config.sh -m -O "$W/b" "$W/b/.config" "${FRAGMENTS[@]}" >/dev/null
make O="$W/b" olddefconfig >/dev/null
if [ -n "$VARIANT" ]; then
  # A Kconfig option whose dependencies are unmet is silently dropped: refuse that.
  lost=$(grep -E '^CONFIG_[A-Z0-9_]+=y$' "$VFRAG" | while read -r l; do grep -qx "$l" "$W/b/.config" || echo "$l"; done)
  [ -z "$lost" ] || { echo "build-kernel: variant $VARIANT: options dropped by olddefconfig:" $lost >&2; exit 1; }
fi
echo "build-kernel: make -j$JOBS vmlinux (several minutes)"
make O="$W/b" -j"$JOBS" vmlinux >/dev/null
cp "$W/b/vmlinux" "$OUT/vmlinux"
cp "$W/b/.config" "$OUT/config"
if [ -z "$VARIANT" ] && ! cmp -s "$OUT/config" "$HERE/kernel/config"; then
  echo "build-kernel: note: resulting .config differs from kernel/config (different linux-source version?)"
fi
echo "build-kernel: wrote $OUT/vmlinux"
