#!/usr/bin/env bash
# Records which code flint runs at start-up and while it serves the API, and writes the method order the build
# uses (src/Flint/code-order/managed.txt for ILC's --order, native.txt for lld's --symbol-ordering-file).
#
#   bash bench/code-order/profile.sh [--keep DIR] [--bin DIR]   # --bin: a flint published with its flint.dbg already
#
# Why: the kernel maps a binary's code in 64 KiB blocks around each fault (fault-around), and after
# ExecutableImage.ReleaseUnwrittenPages lets go of start-up's pages, every block that serving a request touches comes
# back whole. In the linker's default order the API path's 0.5 MB of code is spread over nearly all of the 52 blocks
# (3 MiB resident after 200 requests); packed together in the order it first runs, it fits in about 10.
#
# How: flint is published with its symbols (flint.dbg) and run under qemu-user (`qemu-x86_64 -d exec,nochain`:
# every translation block executed, so every function that ran, exactly; no /dev/kvm or root needed, nothing on the
# host changes) with --no-seccomp (qemu-user does not implement seccomp). bench/api-workload.sh and the GETs of
# bench/memory-breakdown.sh are sent; order.py cuts the trace at the start-up release and writes the functions run
# after it first, then those only start-up ran. Regenerate after large changes to the API path: names that no longer
# exist are skipped, code the list does not name goes after the listed code, so a stale list costs memory, not
# correctness (MemoryGrowthProcessTests checks the resident code). Needs qemu-user (apt-get install qemu-user), curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
keep= bin=
while (($#)); do
  case $1 in
    --keep) keep=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    *) echo "usage: $0 [--keep DIR] [--bin DIR]" >&2; exit 2 ;;
  esac
done
command -v qemu-x86_64 >/dev/null || { echo "profile: needs qemu-user (apt-get install qemu-user)" >&2; exit 1; }
dir=${keep:-$(mktemp -d)}
mkdir -p "$dir"
[ -n "$keep" ] || trap 'rm -rf "$dir"' EXIT

if [ -z "$bin" ]; then
  bin=$dir/bin
  echo "profile: publishing flint with its symbols into $bin"
  dotnet publish src/Flint/Flint.csproj -c Release -r linux-x64 -o "$bin" --nologo -v quiet >"$dir/publish.log" 2>&1 \
    || { grep -E 'error' "$dir/publish.log" | head -20; exit 1; }
fi
nm -n --defined-only "$bin/flint.dbg" >"$dir/flint.nm"

sock=$dir/api.sock
rm -f "$sock"
echo "profile: running it under qemu-user (a few minutes; the trace is about 1 GB)"
qemu-x86_64 -cpu max -d exec,nochain,strace -D "$dir/trace.log" "$bin/flint" --api-sock "$sock" --no-seccomp \
  >"$dir/flint.log" 2>&1 &
qemu=$!
for _ in $(seq 600); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { kill "$qemu"; echo "profile: flint did not start under qemu-user ($dir/flint.log)" >&2; exit 1; }
api() { curl -s --max-time 30 --unix-socket "$sock" -X "$1" "http://localhost$2" ${3:+-H 'Content-Type: application/json' -d "$3"} >/dev/null || true; }
api GET /
bash bench/api-workload.sh "$sock" 20 "$dir"
for _ in $(seq 100); do api GET /; api GET /machine-config; done
kill "$qemu"
wait "$qemu" 2>/dev/null || true

python3 bench/code-order/order.py "$dir/trace.log" "$dir/flint.nm" "$bin/flint" "$dir/order"
cp "$dir/order.ilc" src/Flint/code-order/managed.txt
cp "$dir/order.lld" src/Flint/code-order/native.txt
echo "profile: wrote src/Flint/code-order/managed.txt ($(wc -l <"$dir/order.ilc") names), native.txt ($(wc -l <"$dir/order.lld"))"
