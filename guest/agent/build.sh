#!/bin/bash
# Build flint-agent (the in-guest function agent, docs/agent-protocol.md) as one static binary.
# Usage: guest/agent/build.sh [OUTDIR]     (default guest/agent/out; writes OUTDIR/flint-agent)
# Compiler: $CC (default gcc), linked -static against Debian's static glibc (libc6-dev; the agent
# uses nothing that needs NSS or dlopen). Needs the kernel's uapi headers (linux-libc-dev) for
# <linux/vm_sockets.h>.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/out}
mkdir -p "$OUT"
CC=${CC:-gcc}
"$CC" -static -O2 -Wall -Wextra -Werror -o "$OUT/flint-agent.tmp" "$HERE/flint-agent.c"
strip "$OUT/flint-agent.tmp" 2>/dev/null || true
mv "$OUT/flint-agent.tmp" "$OUT/flint-agent"
echo "flint-agent: built $OUT/flint-agent ($CC)"
