#!/usr/bin/env bash
# Sets up a fresh Debian machine that has the .NET SDK: Debian packages, guest artifacts, and the NativeAOT
# `artifacts/bin/flint`. Idempotent: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

need=()
for pkg in clang lld gcc make binutils python3 e2fsprogs busybox-static qemu-system-x86 iproute2 zlib1g-dev; do
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

# The flint executable, NativeAOT.
if [ ! -x artifacts/bin/flint ] || [ -n "$(find src -newer artifacts/bin/flint \( -name '*.cs' -o -name '*.csproj' \) -print -quit)" ]; then
  echo "setup: publishing artifacts/bin/flint (NativeAOT)"
  dotnet publish src/Flint/Flint.csproj -c Release -r linux-x64 -o artifacts/bin -p:DebugType=none --nologo -v quiet \
    | grep -Ev '^\s*$' || true
  test -x artifacts/bin/flint
fi
{ [ -x artifacts/bin/flint-jailer ] && [ -z "$(find src/Flint.Jailer src/Flint.Sys -newer artifacts/bin/flint-jailer \( -name '*.cs' -o -name '*.csproj' \) -print -quit)" ]; } || { echo "setup: publishing artifacts/bin/flint-jailer (NativeAOT)"; dotnet publish src/Flint.Jailer/Flint.Jailer.csproj -c Release -r linux-x64 -o artifacts/bin -p:DebugType=none --nologo -v quiet | grep -Ev '^\s*$' || true; test -x artifacts/bin/flint-jailer; }
echo "setup: ready (artifacts/bin/flint, artifacts/guest)"
