#!/usr/bin/env python3
"""Method order for NativeAOT's ILC (--order) and lld (--symbol-ordering-file) from a qemu-user execution trace.

    order.py TRACE NM_OUTPUT BINARY OUT_PREFIX [--bias HEX]

TRACE is the log of `qemu-x86_64 -d exec,nochain,strace` (every translation block executed, in order, and the
syscalls between them); NM_OUTPUT is `nm -n --defined-only` of the traced binary's symbols (flint.dbg), BINARY the
traced binary (its __managedcode section tells ILC's methods from the native runtime's functions). The trace
is cut in two at the binary's start-up release (the first madvise(MADV_DONTNEED) inside the binary's mapping,
ExecutableImage.ReleaseUnwrittenPages): what runs after it is what serving the API faults back in. Writes
OUT_PREFIX.ilc (managed methods: those run after the release first, in the order they first ran there, then those
only start-up ran) and OUT_PREFIX.lld (the same for the native functions: runtime, GC, libc), and prints how many
64 KiB blocks of code each phase touches in the traced binary's layout.
"""
import bisect
import re
import subprocess
import sys

BLOCK = 65536
args = sys.argv[1:]
bias = 0x4000000000
if "--bias" in args:
    i = args.index("--bias")
    bias = int(args[i + 1], 16)
    del args[i:i + 2]
trace, nm_path, binary, out = args

# ILC emits every managed method into one section; the rest of the code (runtime, GC, libc) is linked by lld.
managed_range = None
for line in subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True, check=True).stdout.splitlines():
    f = line.replace("[ ", "[").split()
    if len(f) > 5 and f[1] == "__managedcode":
        start, size = int(f[3], 16), int(f[5], 16)
        managed_range = range(start, start + size)
if managed_range is None:
    sys.exit("order.py: no __managedcode section in " + binary)

# Text symbols, sorted; aliases (folded bodies, libc's weak names) share an address.
addrs, names = [], []
for line in open(nm_path):
    parts = line.split()
    if len(parts) != 3 or parts[1] not in "tTwW":
        continue
    a = int(parts[0], 16)
    if addrs and addrs[-1] == a:
        names[-1].append(parts[2])
    else:
        addrs.append(a)
        names.append([parts[2]])

first = {}  # symbol index -> (phase, sequence) of its first run in each phase
seen = [dict(), dict()]
phase, seq = 0, 0
pc_re = re.compile(r"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/")
dontneed = re.compile(r"madvise\(0x([0-9a-f]+),\d+,MADV_DONTNEED\)")
blocks = [set(), set()]
with open(trace, errors="replace") as f:
    for line in f:
        m = pc_re.match(line)
        if not m:
            d = dontneed.search(line)
            if d and phase == 0 and int(d.group(1), 16) == bias:
                phase = 1
            continue
        pc = int(m.group(1), 16) - bias
        if pc < 0 or pc > 1 << 32:
            continue
        blocks[phase].add(pc // BLOCK)
        i = bisect.bisect_right(addrs, pc) - 1
        if i < 0:
            continue
        if i not in seen[phase]:
            seen[phase][i] = seq
            seq += 1

if phase == 0:
    sys.exit("order.py: no start-up release (madvise MADV_DONTNEED at the binary's base) in the trace")


# glibc picks one of several versions of memcpy, strlen ... by the CPU it runs on (IFUNC): qemu's CPU gets the SSE
# ones, a host the AVX2 or AVX-512 ones. Each version listed brings its siblings along, so any CPU finds its own
# next to the rest.
variant = re.compile(r"^(__\w+?)_(sse2|ssse3|sse4_1|sse4_2|avx|avx2|avx512|evex|evex512|erms)(_|$)")
siblings = {}
for i, at in enumerate(names):
    for n in at:
        if (v := variant.match(n)) and addrs[i] not in managed_range:
            siblings.setdefault(v.group(1), []).append(n)

order = sorted(seen[1], key=seen[1].get) + sorted((i for i in seen[0] if i not in seen[1]), key=seen[0].get)
written = set()
with open(out + ".ilc", "w") as ilc, open(out + ".lld", "w") as lld:
    for i in order:
        for n in names[i]:
            if addrs[i] in managed_range:
                ilc.write(n + "\n")
                continue
            v = variant.match(n)
            for m in siblings.get(v.group(1), [n]) if v else [n]:
                if m not in written:
                    written.add(m)
                    lld.write(m + "\n")
print(f"start-up: {len(seen[0])} functions, {len(blocks[0])} blocks of 64 KiB; "
      f"after the release: {len(seen[1])} functions, {len(blocks[1])} blocks ({len(blocks[1]) * 64} KiB)")
