#!/usr/bin/env bash
# Packs what bench/device/kvm_check.py needs on a machine without .NET or QEMU into one bundle:
# the static flint and flint-jailer, the test guest and its disk tool, the guest kernel + rootfs, and QEMU with its
# own loader and libraries (run through that loader, so the other machine's libc does not matter).
#   bash bench/device/pack.sh [OUT.tar.xz]     (default .devcarry/bundle.tar.xz; .devcarry is git-ignored)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-.devcarry/bundle.tar.xz}
mkdir -p "$(dirname "$out")"
grep -qx '/.devcarry/' .git/info/exclude 2>/dev/null || echo '/.devcarry/' >> .git/info/exclude
make -s -C tests/testguest >/dev/null
for f in artifacts/bin/flint artifacts/bin/flint-jailer artifacts/guest/vmlinux artifacts/guest/rootfs.ext4; do
  [ -f "$f" ] || { echo "pack: $f missing (run scripts/setup.sh)" >&2; exit 1; }
done
S=$(mktemp -d); trap 'rm -rf "$S"' EXIT
cp artifacts/bin/flint artifacts/bin/flint-jailer tests/testguest/out/testguest.elf tests/testguest/out/mkdisk "$(command -v busybox)" \
   artifacts/guest/vmlinux "$S/"
cp --sparse=always artifacts/guest/rootfs.ext4 "$S/"
Q=$(command -v qemu-system-x86_64 || true)
if [ -n "$Q" ]; then
  mkdir -p "$S/qemu/lib" "$S/qemu/share"
  cp "$Q" "$S/qemu/"
  ldd "$Q" | awk '/=> \//{print $3}' | xargs -I{} cp -L {} "$S/qemu/lib/"
  cp -L /lib64/ld-linux-x86-64.so.2 "$S/qemu/"
  for b in qboot.rom bios-microvm.bin pvh.bin linuxboot_dma.bin kvmvapic.bin; do
    [ -e "/usr/share/qemu/$b" ] && cp -L "/usr/share/qemu/$b" "$S/qemu/share/"
  done
  mkdir -p "$S/qemu/modules"   # TCG is a module in Debian's build: lets this bundle be tried on a machine without KVM
  cp /usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so "$S/qemu/modules/" 2>/dev/null || true
  cat > "$S/qemu/run-qemu" <<'SH'
#!/bin/sh
D=$(cd "$(dirname "$0")" && pwd)
export QEMU_MODULE_DIR="$D/modules"
exec "$D/ld-linux-x86-64.so.2" --library-path "$D/lib" "$D/qemu-system-x86_64" -L "$D/share" "$@"
SH
  chmod +x "$S/qemu/run-qemu"
fi
# ip (netns, tap) and ping, for machines that lack them: run through the same carried loader.
mkdir -p "$S/tools/lib"
for t in ip ping; do
  b=$(command -v $t) || continue
  cp -L "$b" "$S/tools/$t.bin"
  ldd "$b" | awk '/=> \//{print $3}' | xargs -I{} cp -L {} "$S/tools/lib/"
  printf '#!/bin/sh\nD=$(cd "$(dirname "$0")" && pwd)\nexec "$D/ld-linux-x86-64.so.2" --library-path "$D/lib" "$D/%s.bin" "$@"\n' $t > "$S/tools/$t"
  chmod +x "$S/tools/$t"
done
cp -L /lib64/ld-linux-x86-64.so.2 "$S/tools/"
tar -C "$S" -cJf "$out" .
ls -la "$out"
