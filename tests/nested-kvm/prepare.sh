#!/usr/bin/env bash
# Builds what tests/nested-kvm/run.sh boots, once, into CACHE: Debian's stock kernel (apt's linux-image-amd64), its
# module tree (depmod'ed there, never installed on this machine) and a busybox initramfs that loads virtio-9p and
# kvm_amd, mounts this machine's / and hands over to l1-stage.sh. Reused while the recipe (these files) is unchanged.
#   tests/nested-kvm/prepare.sh CACHE
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=$1
mkdir -p "$cache"
recipe=$(cat "$here/prepare.sh" "$here/l1-init" | sha256sum | cut -c1-16)
if [ -f "$cache/ready" ] && [ "$(cat "$cache/ready")" = "$recipe" ]; then exit 0; fi

for t in qemu-system-x86_64 busybox cpio depmod; do
  command -v $t >/dev/null || PATH=$PATH:/usr/sbin:/sbin command -v $t >/dev/null || { echo "nested-kvm: $t missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
export PATH=$PATH:/usr/sbin:/sbin
busybox=$(command -v busybox)
file -L "$busybox" 2>/dev/null | grep -q "statically linked" || { echo "nested-kvm: $busybox is not static (install busybox-static)" >&2; exit 1; }

pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$pkg" ] || { echo "nested-kvm: apt knows no linux-image-amd64 (run apt-get update)" >&2; exit 1; }
echo "nested-kvm: preparing L1 from $pkg (once)" >&2
work=$(mktemp -d "$cache/prep.XXXXXX"); trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download "$pkg" >/dev/null 2>&1) || { echo "nested-kvm: apt-get download $pkg failed" >&2; exit 1; }
dpkg-deb -x "$work"/linux-image-*.deb "$work/img"
kver=$(ls "$work/img/lib/modules")
depmod -b "$work/img" "$kver"

# The initramfs: busybox, the module chain for 9p over virtio-pci and for kvm_amd (dependencies first), the init.
ird=$work/initrd; mkdir -p "$ird"/{bin,proc,sys,dev,host,mods}
cp "$busybox" "$ird/bin/busybox"
M=$work/img/lib/modules/$kver
order=""
add() { local m=$1 d; for d in $(grep -E "^$m:" "$M/modules.dep" | cut -d: -f2); do add "$d"; done
        case " $order " in *" $m "*) ;; *) order="$order $m";; esac; }
for m in kvm-amd 9p 9pnet_virtio virtio_pci; do
  add "$(grep -oE "^[^:]*/$m\.ko[^:]*" "$M/modules.dep" | head -1)"
done
for m in $order; do cp "$M/$m" "$ird/mods/"; basename "$m" >> "$ird/mods/order"; done
cp "$here/l1-init" "$ird/init"; chmod +x "$ird/init"
(cd "$ird" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$cache/initrd.gz"

rm -rf "$cache/modules"; mkdir -p "$cache/modules"; mv "$M" "$cache/modules/$kver"
cp "$work/img/boot/vmlinuz-$kver" "$cache/vmlinuz"
echo "$kver" > "$cache/kver"
echo "$recipe" > "$cache/ready"
