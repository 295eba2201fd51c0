#!/usr/bin/env bash
# Coverage-guided fuzzing of Flint's guest- and client-facing parsers (see docs/fuzzing.md).
#
#   tests/fuzz/run.sh [SECONDS]        AFL++ campaign: SECONDS per target (default 60), all targets, figures table at the end
#   tests/fuzz/run.sh --ci [SECONDS]   CI smoke: replay the seed corpus and any saved findings, then SECONDS (default 3) of
#                                      in-process mutation per target (no AFL++ needed); exit 1 on a crash, 3 on a hang
#   tests/fuzz/run.sh --replay DIR...  replay findings (AFL's crashes/ or hangs/ dirs) through their targets
#   FUZZ_TARGETS="http api-json" ...   restricts either mode to those targets
#   FUZZ_RESUME=1 ...                  continue the last campaign's queues (default: start afresh; the previous
#                                      artifacts/fuzz/out/TARGET is kept as out.prev/TARGET)
#
# Builds tests/fuzz/Flint.Fuzz (JIT, not NativeAOT), instruments the Flint assemblies with SharpFuzz into
# artifacts/fuzz/bin, then runs afl-fuzz on each target under `nice -n 19` (the build machine is shared). The
# virtio-net target opens a tap: it runs in a private network namespace (unshare -n) and is skipped where it cannot.
# Findings stay under artifacts/fuzz/out/TARGET/default/{crashes,hangs}; a summary goes to artifacts/fuzz/summary.tsv.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
FUZZ=$ROOT/artifacts/fuzz
BIN=$FUZZ/bin       # instrumented: only usable under afl-fuzz (outside Fuzzer.Run, SharpFuzz's trace map is not set up)
PLAIN=$FUZZ/publish # the same build, not instrumented: replay and --ci
CORPUS=$ROOT/tests/fuzz/corpus
ALL_TARGETS="http api-json mmds-http mmds-stack virtio-block virtio-net virtio-vsock virtio-rng virtio-balloon snapshot pci"
TARGETS=${FUZZ_TARGETS:-$ALL_TARGETS}

mode=afl
case "${1:-}" in
  --ci) mode=ci; shift ;;
  --replay) mode=replay; shift ;;
esac

build() {
  # Publish plain, then instrument a fresh copy: SharpFuzz rewrites assemblies in place, and an incremental publish
  # over instrumented files could leave a mix.
  nice -n 19 dotnet publish tests/fuzz/Flint.Fuzz -c Release -o "$FUZZ/publish" --nologo -v quiet >"$FUZZ/build.log" 2>&1 \
    || { cat "$FUZZ/build.log"; echo "fuzz: build failed" >&2; exit 2; }
  rm -rf "$BIN"
  cp -a "$FUZZ/publish" "$BIN"
  "$BIN/Flint.Fuzz" instrument "$BIN"/Flint.Api.dll "$BIN"/Flint.Vmm.dll "$BIN"/Flint.Devices.dll "$BIN"/Flint.Memory.dll "$BIN"/Flint.Snapshot.dll \
    >>"$FUZZ/build.log" 2>&1 || { cat "$FUZZ/build.log"; echo "fuzz: instrumentation failed" >&2; exit 2; }
}

# The net target needs its own network namespace for the tap it creates; elsewhere the host's is left alone.
wrap() {
  local target=$1; shift
  if [ "$target" = virtio-net ]; then
    if unshare -n true 2>/dev/null; then unshare -n -- "$@"; return; fi
    echo "virtio-net: skipped (cannot create a network namespace here)" >&2
    return 0
  fi
  "$@"
}

mkdir -p "$FUZZ"
build

if [ "$mode" = replay ]; then
  rc=0
  for dir in "$@"; do
    # .../out/TARGET/default/crashes -> TARGET
    t=$(basename "$(dirname "$(dirname "$dir")")")
    wrap "$t" "$PLAIN/Flint.Fuzz" replay "$t" "$dir" || rc=1
  done
  exit $rc
fi

if [ "$mode" = ci ]; then
  secs=${1:-3}
  rc=0
  start=$(date +%s)
  for t in $TARGETS; do
    found=()
    for d in "$FUZZ/out/$t/default/crashes" "$FUZZ/out/$t/default/hangs"; do
      [ -n "$(ls -A "$d" 2>/dev/null | grep -v README)" ] && found+=("$d")
    done
    wrap "$t" "$PLAIN/Flint.Fuzz" replay "$t" "$CORPUS/$t" "${found[@]}" | tail -n 1 || rc=1
    set +e
    wrap "$t" nice -n 19 "$PLAIN/Flint.Fuzz" mutate "$t" "$secs" "$CORPUS/$t" "$FUZZ/ci/$t"
    r=$?
    set -e
    [ $r -eq 0 ] || { echo "fuzz: $t failed (exit $r), input saved under $FUZZ/ci/$t" >&2; rc=1; }
  done
  echo "fuzz --ci: $(( $(date +%s) - start )) s, $( [ $rc -eq 0 ] && echo 'no crashes' || echo 'CRASHES')"
  exit $rc
fi

# ---- AFL++ campaign
secs=${1:-60}
if ! command -v afl-fuzz >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq afl++ >/dev/null
  else
    echo "fuzz: afl-fuzz not found (Debian package afl++); tests/fuzz/run.sh --ci needs no AFL" >&2; exit 2
  fi
fi
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 \
       AFL_NO_AFFINITY=1 AFL_MAP_SIZE=65536 AFL_SHUFFLE_QUEUE=1 DOTNET_TieredPGO=0
summary=$FUZZ/summary.tsv
printf 'target\tseconds\texecs\texecs_per_sec\tcorpus\tcrashes\thangs\tedges\n' >"$summary"
rc=0
for t in $TARGETS; do
  out=$FUZZ/out/$t
  if [ "${FUZZ_RESUME:-0}" = 1 ] && [ -d "$out/default" ]; then resume=1; else
    resume=0
    if [ -d "$out" ]; then mkdir -p "$FUZZ/out.prev"; rm -rf "$FUZZ/out.prev/$t"; mv "$out" "$FUZZ/out.prev/$t"; fi
  fi
  mkdir -p "$out"
  input=$CORPUS/$t; [ $resume = 1 ] && input=-
  echo "== $t: ${secs}s" >&2
  # -t: a hang is an input over 2 s, fixed (AFL's auto timeout, tens of ms, would count the JIT's first run of a path
  # and GC pauses on this loaded machine as hangs, and each one restarts the .NET fork server); -V: stop after secs
  # A dry run on this loaded machine sometimes reports "No instrumentation detected" for the first seed (the target
  # is built, and everything JIT-compiled, during it); a second start has always passed.
  ok=0
  for attempt in 1 2; do
    if wrap "$t" nice -n 19 afl-fuzz -i "$input" -o "$out" -t 2000 -m none -V "$secs" -- "$BIN/Flint.Fuzz" afl "$t" >"$out/afl.log" 2>&1; then
      ok=1; break
    fi
    grep -aq "No instrumentation detected" "$out/afl.log" || break
    rm -rf "$out/default"
  done
  [ $ok = 1 ] || { echo "fuzz: afl-fuzz $t failed, see $out/afl.log" >&2; tail -n 20 "$out/afl.log" >&2; rc=1; continue; }
  stats=$out/default/fuzzer_stats
  get() { awk -F' *: *' -v k="$1" '$1==k {print $2}' "$stats"; }
  crashes=$(get saved_crashes); hangs=$(get saved_hangs)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$(get run_time)" "$(get execs_done)" "$(get execs_per_sec)" \
    "$(get corpus_count)" "$crashes" "$hangs" "$(get edges_found)" >>"$summary"
  [ "${crashes:-0}" = 0 ] && [ "${hangs:-0}" = 0 ] || rc=1
done
column -t "$summary"
exit $rc
