#!/usr/bin/env bash
# Where a flint process's resident memory goes, by kind of mapping (/proc/PID/smaps).
#
#   bash bench/memory-breakdown.sh [--binary PATH]          # starts flint --api-sock, measures it idle, after a
#                                                            # pre-boot configuration (machine-config, boot-source,
#                                                            # 200 GETs) and after 240 more requests of a client's
#                                                            # kinds (bench/api-workload.sh)
#   bash bench/memory-breakdown.sh --pid PID [--guest-mib N] # measures a running flint (e.g. after a real boot)
#
# Firecracker's memory-overhead figure (tests/integration_tests/performance/test_memory_overhead.py) is the RSS
# of every mapping whose size is not the guest memory size; the "overhead" line here is the same sum. The classes:
#   binary code          the executable's r-x segment (NativeAOT managed code + runtime + static libc)
#   binary rodata        its r-- segments (frozen strings, dehydrated type data, unwind tables, relocations)
#   binary data          its rw- segment (relocated pointers: .data, .got, .data.rel.ro)
#   bss + hydrated       the anonymous mapping just after the binary: .bss and NativeAOT's .hydrated section, where
#                        the runtime expands the type system data (MethodTables ...) at start-up
#   malloc               libc's [heap] and per-thread arenas (64 MiB-aligned anonymous mappings)
#   thread stacks        8 MiB anonymous mappings (pthread stacks; only the touched pages are resident)
#   GC heap + runtime    every other anonymous mapping (the GC's regions and bookkeeping, runtime tables)
#   kernel               [stack] of the main thread, [vdso], [vvar]
#   guest memory         mappings of exactly the guest memory size, or above 3 GiB of the two regions split at the
#                        32-bit gap (only with --guest-mib; excluded from overhead, as Firecracker excludes them)
# File-backed pages of the binary are counted as Firecracker counts them (RSS), though they are page cache that
# another flint started from the same file would share.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=artifacts/bin/flint PID= GUEST_MIB=0
while (($#)); do
  case $1 in
    --binary) BIN=$2; shift 2 ;;
    --pid) PID=$2; shift 2 ;;
    --guest-mib) GUEST_MIB=$2; shift 2 ;;
    *) echo "usage: $0 [--binary PATH] | --pid PID [--guest-mib N]" >&2; exit 2 ;;
  esac
done

# Prints the breakdown of process $1 under heading $2.
breakdown() {
  local pid=$1 title=$2 exe
  exe=$(readlink "/proc/$pid/exe")
  echo "== $title (pid $pid, $(basename "$exe"), $(ls /proc/"$pid"/task | wc -l) threads)"
  awk -v exe="$exe" -v guest_kib=$((GUEST_MIB * 1024)) -v gap_kib=$((3072 * 1024)) '
    function flush() {
      if (range == "") return
      split(range, ab, "-") # mawk has no strtonum: addresses are compared as hex strings
      if (name == exe) cls = (perm ~ /x/) ? "binary code" : (perm ~ /w/) ? "binary data" : "binary rodata"
      else if (name == "" && ab[1] == last_bin_end) cls = "bss + hydrated"
      else if (name == "[heap]") cls = "malloc"
      else if (name ~ /^\[(stack|vdso|vvar|vvar_vclock|vsyscall)\]$/) cls = "kernel"
      else if (name == "" && guest_kib > 0 && (size == guest_kib || (guest_kib > gap_kib && (size == gap_kib || size == guest_kib - gap_kib)))) cls = "guest memory"
      else if (name == "" && ab[1] ~ /[048c]000000$/ && size <= 65536) cls = "malloc"
      else if (name == "" && size == 8192) cls = "thread stacks"
      else if (name == "") cls = "GC heap + runtime"
      else cls = "other files"
      if (name == exe) last_bin_end = ab[2]
      R[cls] += rss; P[cls] += pss; A[cls] += anon; N[cls]++
      if (cls != "guest memory") { oR += rss; oP += pss; oA += anon }
      tR += rss
    }
    /^[0-9a-f]+-[0-9a-f]+ / { flush(); range = $1; perm = $2; name = $6; rss = pss = anon = size = 0; next }
    /^Size:/ { size = $2 } /^Rss:/ { rss = $2 } /^Pss:/ { pss = $2 } /^Anonymous:/ { anon = $2 }
    END {
      flush()
      printf "  %-20s %9s %9s %9s %5s\n", "class", "Rss KiB", "Pss KiB", "Anon KiB", "maps"
      n = split("binary code,binary rodata,binary data,bss + hydrated,GC heap + runtime,malloc,thread stacks,kernel,other files,guest memory", order, ",")
      for (i = 1; i <= n; i++) { c = order[i]; if (c in R) printf "  %-20s %9d %9d %9d %5d\n", c, R[c], P[c], A[c], N[c] }
      printf "  %-20s %9d %9d %9d        = %.3f MiB RSS (Firecracker: <= 5 MiB)\n", "overhead", oR, oP, oA, oR / 1024
    }' "/proc/$pid/smaps"
}

if [ -n "$PID" ]; then breakdown "$PID" "flint"; exit 0; fi

command -v curl >/dev/null || { echo "memory-breakdown: needs curl" >&2; exit 1; }
dir=$(mktemp -d); sock=$dir/api.sock
"$BIN" --api-sock "$sock" >"$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.01; done
api() { curl -s --unix-socket "$sock" -X "$1" "http://localhost$2" ${3:+-H 'Content-Type: application/json' -d "$3"} >/dev/null || true; }
api GET /
sleep 0.3
breakdown "$pid" "idle, API answered once"
api PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 1024}'
api PUT /boot-source '{"kernel_image_path": "/dev/null", "boot_args": "console=ttyS0"}'
for _ in $(seq 100); do api GET /; api GET /machine-config; done
sleep 0.3
breakdown "$pid" "configured pre-boot (machine-config, boot-source, 200 GETs)"
bash bench/api-workload.sh "$sock" 20 "$dir"
sleep 0.3
breakdown "$pid" "and 240 more requests of a Firecracker client's kinds (bench/api-workload.sh: drives, net, mmds, PATCH)"
