#!/usr/bin/env bash
# Sets up a fresh Debian machine that has the .NET SDK: Debian packages, guest artifacts, and the NativeAOT
# `artifacts/bin/flint`. Idempotent: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

need=()
for pkg in clang lld gcc make binutils python3 e2fsprogs busybox-static cpio kmod file qemu-system-x86 iproute2 iputils-ping zlib1g-dev libc6-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}"
  SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Guest kernel + rootfs: reused from ../shared/guest when its recipe matches ours, built otherwise.
bash guest/fetch-or-build.sh "$ROOT/artifacts/guest"

# The NativeAOT executables, republished when their sources changed. A failed publish fails setup (a stale
# binary from an earlier build must never pass for the current sources).
publish() { # project, binary, source dirs...
  local proj=$1 bin=$2; shift 2
  if [ -x "artifacts/bin/$bin" ] && [ -z "$(find "$@" -newer "artifacts/bin/$bin" \( -name '*.cs' -o -name '*.csproj' -o -name '*.json' \) -print -quit)" ]; then
    return 0
  fi
  echo "setup: publishing artifacts/bin/$bin (NativeAOT)"
  mkdir -p artifacts
  if ! dotnet publish "$proj" -c Release -r linux-x64 -o artifacts/bin -p:DebugType=none --nologo -v quiet > "artifacts/publish-$bin.log" 2>&1; then
    grep -E 'error' "artifacts/publish-$bin.log" | head -20
    echo "setup: publishing $bin failed (artifacts/publish-$bin.log)"
    rm -f "artifacts/bin/$bin"
    return 1
  fi
  touch "artifacts/bin/$bin"
}
publish src/Flint/Flint.csproj flint src Directory.Build.props
publish src/Flint.Jailer/Flint.Jailer.csproj flint-jailer src/Flint.Jailer src/Flint.Sys Directory.Build.props
publish src/Flint.PoolDaemon/Flint.PoolDaemon.csproj flint-pool src/Flint.PoolDaemon src/Flint.Pool src/Flint.Client src/Flint.Sys Directory.Build.props
publish src/Flint.SnapshotTool/Flint.SnapshotTool.csproj flint-snapshot src/Flint.SnapshotTool src/Flint.Snapshot src/Flint.Sys Directory.Build.props
publish src/Flint.UffdHandler/Flint.UffdHandler.csproj flint-uffd-handler src/Flint.UffdHandler src/Flint.Sys Directory.Build.props
echo "setup: ready (artifacts/bin/flint, artifacts/bin/flint-jailer, artifacts/bin/flint-pool, artifacts/bin/flint-snapshot, artifacts/bin/flint-uffd-handler, artifacts/guest)"
