#!/bin/bash
# Build the Flint test guest kernel (vmlinux) from Debian's linux-source-6.1:
# `make tinyconfig` + kernel/minimal.fragment + kernel/minimal-fast.fragment +
# kernel/extras.fragment, with kernel/*.patch applied. About 4-7 minutes on 2 cores.
# Usage: build-kernel.sh OUTDIR        (writes OUTDIR/vmlinux and OUTDIR/config)
# Env: LINUX_SRC_TAR (default /usr/src/linux-source-6.1.tar.xz), JOBS (default nproc).
# Adapted from shared/guest/build-kernel.sh: same recipe, plus progress messages, no
# apt-get when the packages are already there, sudo when not root, and a check of the
# resulting .config against kernel/config.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: build-kernel.sh OUTDIR}
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
scripts/kconfig/merge_config.sh -m -O "$W/b" "$W/b/.config" "$HERE"/kernel/minimal.fragment \
  "$HERE"/kernel/minimal-fast.fragment "$HERE"/kernel/extras.fragment >/dev/null
make O="$W/b" olddefconfig >/dev/null
echo "build-kernel: make -j$JOBS vmlinux (several minutes)"
make O="$W/b" -j"$JOBS" vmlinux >/dev/null
cp "$W/b/vmlinux" "$OUT/vmlinux"
cp "$W/b/.config" "$OUT/config"
if ! cmp -s "$OUT/config" "$HERE/kernel/config"; then
  echo "build-kernel: note: resulting .config differs from kernel/config (different linux-source version?)"
fi
echo "build-kernel: wrote $OUT/vmlinux"
