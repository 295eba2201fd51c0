#!/bin/bash
# Provide the Flint test guest artifacts (vmlinux, rootfs.ext4, SHA256SUMS) in OUTDIR.
# Usage: guest/fetch-or-build.sh [OUTDIR]     (default: <repo>/artifacts/guest)
#
# 1. OUTDIR already holds vmlinux + rootfs.ext4 whose SHA256SUMS verify and whose
#    RECIPE.sha256 matches our recipe -> nothing to do.
# 2. A prebuilt set in $FLINT_SHARED_GUEST (default <repo>/../shared/guest) has verifying
#    SHA256SUMS and a recipe byte-identical to ours -> copy it.
#    Recipe = kernel/*.fragment + kernel/*.patch (same names, same sha256) + the
#    /sbin/init text of mkrootfs.sh (the INIT here-document).
# 3. Otherwise build: build-kernel.sh (Debian linux-source-6.1, several minutes) and
#    mkrootfs.sh (busybox-static + mkfs.ext4 -d).
# Env: FLINT_SHARED_GUEST, FLINT_GUEST_FORCE_BUILD=1 (skip 1 and 2),
#      FLINT_GUEST_NO_BUILD=1 (exit 3 instead of building).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
OUT=${1:-$REPO/artifacts/guest}
SHARED=${FLINT_SHARED_GUEST:-$REPO/../shared/guest}

# recipe_sums DIR MKROOTFS: "sha256  name" lines for the recipe, sorted by name
recipe_sums() {
  local kdir=$1 mk=$2
  [ -d "$kdir" ] && [ -f "$mk" ] || return 1
  ( cd "$kdir" && ls -1 -- *.fragment *.patch 2>/dev/null | LC_ALL=C sort | xargs -r -d '\n' sha256sum )
  printf '%s  init(mkrootfs.sh)\n' \
    "$(sed -n "/<<'INIT'\$/,/^INIT\$/p" "$mk" | sed '1d;$d' | sha256sum | cut -d' ' -f1)"
}

# artifacts_ok DIR: vmlinux + rootfs.ext4 present and SHA256SUMS (covering both) verifies
artifacts_ok() {
  local d=$1
  [ -f "$d/vmlinux" ] && [ -f "$d/rootfs.ext4" ] && [ -f "$d/SHA256SUMS" ] || return 1
  grep -q ' vmlinux$' "$d/SHA256SUMS" && grep -q ' rootfs.ext4$' "$d/SHA256SUMS" || return 1
  ( cd "$d" && sha256sum --quiet -c SHA256SUMS >/dev/null 2>&1 )
}

OURS=$(recipe_sums "$HERE/kernel" "$HERE/mkrootfs.sh")
[ "$(printf '%s\n' "$OURS" | grep -c '\.fragment$')" -ge 3 ] || { echo "guest: recipe incomplete in $HERE/kernel" >&2; exit 1; }

if [ "${FLINT_GUEST_FORCE_BUILD:-0}" != 1 ]; then
  if artifacts_ok "$OUT" && [ -f "$OUT/RECIPE.sha256" ] && [ "$(cat "$OUT/RECIPE.sha256")" = "$OURS" ]; then
    echo "guest: up to date in $OUT (recipe matches)"
    exit 0
  fi

  if [ -d "$SHARED" ]; then
    SHARED=$(cd "$SHARED" && pwd)
    if ! artifacts_ok "$SHARED"; then
      echo "guest: prebuilt $SHARED: missing files or SHA256SUMS does not verify; not reused"
    elif ! THEIRS=$(recipe_sums "$SHARED/kernel" "$SHARED/mkrootfs.sh"); then
      echo "guest: prebuilt $SHARED has no kernel/ recipe or mkrootfs.sh; not reused"
    elif [ "$THEIRS" != "$OURS" ]; then
      echo "guest: prebuilt $SHARED: recipe differs from guest/kernel + mkrootfs.sh; not reused:"
      diff <(printf '%s\n' "$THEIRS") <(printf '%s\n' "$OURS") | sed 's/^/  /' || true
    else
      mkdir -p "$OUT"
      for f in vmlinux rootfs.ext4 SHA256SUMS; do
        install -m 0644 "$SHARED/$f" "$OUT/.$f.tmp" && mv -f "$OUT/.$f.tmp" "$OUT/$f"
      done
      [ -f "$SHARED/kernel/config" ] && install -m 0644 "$SHARED/kernel/config" "$OUT/config"
      artifacts_ok "$OUT" || { echo "guest: copy to $OUT does not verify" >&2; exit 1; }
      printf '%s\n' "$OURS" > "$OUT/RECIPE.sha256"
      echo "guest: reused prebuilt $SHARED -> $OUT (recipe matches)"
      exit 0
    fi
  else
    echo "guest: no prebuilt set at $SHARED"
  fi
fi

if [ "${FLINT_GUEST_NO_BUILD:-0}" = 1 ]; then
  echo "guest: would build into $OUT, but FLINT_GUEST_NO_BUILD=1"
  exit 3
fi
echo "guest: building into $OUT: kernel from Debian linux-source-6.1 (several minutes), rootfs from busybox-static"
mkdir -p "$OUT"
rm -f "$OUT/RECIPE.sha256" "$OUT/SHA256SUMS"
"$HERE/build-kernel.sh" "$OUT"
"$HERE/mkrootfs.sh" "$OUT/rootfs.ext4"
( cd "$OUT" && sha256sum vmlinux rootfs.ext4 > SHA256SUMS )
printf '%s\n' "$OURS" > "$OUT/RECIPE.sha256"
echo "guest: built $OUT/vmlinux and $OUT/rootfs.ext4"
