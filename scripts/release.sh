#!/usr/bin/env bash
# Makes a release tarball a user can install without .NET: the static `flint` and `flint-jailer`, the tools
# (`flint-snapshot`, `flint-uffd-handler`, the `flint-pool` daemon), the default
# seccomp filters (seccompiler JSON, the starting point for --seccomp-filter), the docs, README, LICENSE (when
# the repository has one), VERSION, an install script and SHA256SUMS over all of it.
#
#   bash scripts/release.sh [--skip-setup] [--with-guest] [OUTDIR]     (default OUTDIR: artifacts/release)
#
#   --skip-setup  use artifacts/bin as it is (default: scripts/setup.sh first, which republishes stale binaries)
#   --with-guest  add the guest kernel and rootfs (artifacts/guest, ~34 MB) under guest/, for the getting-started VM
#
# Writes OUTDIR/flint-v<flint version>-x86_64.tgz and prints its path. The tarball holds one directory,
# flint-v<version>-x86_64/; inside it `sudo ./install.sh` (PREFIX=/usr/local by default) puts the binaries in
# PREFIX/bin and the rest in PREFIX/share/flint. Versions come from src/Flint/Versions.cs: Flint's own release, and
# the Firecracker API version the binaries implement (what `flint --version` and GET /version report).
set -euo pipefail
cd "$(dirname "$0")/.."
setup=1 guest=0 out=artifacts/release
for a in "$@"; do
  case $a in
    --skip-setup) setup=0 ;;
    --with-guest) guest=1 ;;
    -*) echo "release: unknown option $a" >&2; exit 2 ;;
    *) out=$a ;;
  esac
done
if [ $setup = 1 ]; then bash scripts/setup.sh; fi
bins="flint flint-jailer flint-snapshot flint-uffd-handler flint-pool"
for b in $bins; do f=artifacts/bin/$b
  [ -x "$f" ] || { echo "release: $f missing: run scripts/setup.sh" >&2; exit 1; }
done

version_of() { sed -n "s/.*const string $1 = \"\([^\"]*\)\".*/\1/p" src/Flint/Versions.cs; }
flint_version=$(version_of Flint)
fc_version=$(version_of Firecracker)
[ -n "$flint_version" ] && [ -n "$fc_version" ] || { echo "release: versions not found in src/Flint/Versions.cs" >&2; exit 1; }
# The binaries must say the version this tarball is named for (a stale binary would not).
reported=$(artifacts/bin/flint --version | head -1)
[ "$reported" = "Firecracker v$fc_version" ] || { echo "release: artifacts/bin/flint reports '$reported', expected 'Firecracker v$fc_version'" >&2; exit 1; }

name=flint-v$flint_version-x86_64
S=$(mktemp -d); trap 'rm -rf "$S"' EXIT
D=$S/$name
mkdir -p "$D/bin" "$D/share/seccomp" "$D/docs"
for b in $bins; do cp "artifacts/bin/$b" "$D/bin/"; done
cp src/Flint.Seccomp/default-filters.json "$D/share/seccomp/"
cp README.md "$D/"
# The docs' pages and charts; raw run logs and JSON stay in the repository.
(cd docs && find . \( -name '*.md' -o -name '*.svg' \) -exec cp --parents {} "$D/docs/" \;)
if [ -f LICENSE ]; then
  cp LICENSE "$D/"
else
  echo "release: WARNING: the repository has no LICENSE file; the tarball ships without one" >&2
fi
if [ $guest = 1 ]; then
  mkdir -p "$D/guest"
  cp artifacts/guest/vmlinux "$D/guest/"
  cp --sparse=always artifacts/guest/rootfs.ext4 "$D/guest/"
fi
cat > "$D/VERSION" <<TXT
flint $flint_version
implements the Firecracker API $fc_version (flint --version and GET /version report "Firecracker v$fc_version")
built from $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')
TXT
cat > "$D/install.sh" <<'SH'
#!/bin/sh
# Installs flint, flint-jailer and the tools into $PREFIX/bin (default /usr/local) and the docs and default seccomp filters
# into $PREFIX/share/flint. Checks SHA256SUMS first. Run from the unpacked directory, as root: sudo ./install.sh
set -eu
cd "$(dirname "$0")"
PREFIX=${PREFIX:-/usr/local}
sha256sum --quiet -c SHA256SUMS
install -d "$PREFIX/bin" "$PREFIX/share/flint"
install -m 0755 bin/* "$PREFIX/bin/"
for f in VERSION README.md LICENSE; do [ -f "$f" ] && install -m 0644 "$f" "$PREFIX/share/flint/"; done
cp -R docs share/seccomp "$PREFIX/share/flint/"
[ -d guest ] && cp -R guest "$PREFIX/share/flint/"
echo "installed $(head -1 VERSION) into $PREFIX/bin; docs in $PREFIX/share/flint/docs"
"$PREFIX/bin/flint" --version | head -1
SH
chmod 755 "$D/install.sh"
(cd "$D" && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum > SHA256SUMS)
mkdir -p "$out"
tar -C "$S" --owner=0 --group=0 -czf "$out/$name.tgz" "$name"
(cd "$out" && sha256sum "$name.tgz" > "$name.tgz.sha256")
echo "$out/$name.tgz"
