#!/usr/bin/env bash
# API round trip on one keep-alive connection, binaries alternated run by run (the host's load moves absolute figures;
# alternating keeps the comparison fair), and a C epoll server that answers without parsing as this host's floor.
#
#   bash bench/api-rtt.sh [--rounds R] [--requests N] [--kinds "get put"] BINARY...
#
# Each round starts every binary afresh (`--api-sock`, default Info logging to /dev/null), runs bench/api-rtt.c for N
# requests of each kind after 200 warm-up ones, and stops it. Prints each run's median, then per binary and kind the
# median of the R run medians (us). Kinds: get (GET /), put (PUT /machine-config, pre-boot), version, mc
# (GET /machine-config), bad (GET of an unknown path: 400 from the API thread). `floor` as a BINARY runs the C server.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=10 N=3000 KINDS="get put"
while (($#)); do
  case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --requests) N=$2; shift 2 ;;
    --kinds) KINDS=$2; shift 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--rounds R] [--requests N] [--kinds \"get put\"] BINARY|floor..." >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/api-rtt" bench/api-rtt.c
cat > "$work/floor.c" <<'EOF'
/* The floor: one connection, epoll, read whatever came, write a fixed 200 answer. No parsing, no second thread. */
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(int argc, char **argv) {
    (void)argc;
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 8)) return 1;
    int fd = accept(l, 0, 0), ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
    static const char r[] = "HTTP/1.1 204 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n\r\n";
    static const char g[] = "HTTP/1.1 200 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n"
                            "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    char b[4096];
    for (;;) {
        epoll_wait(ep, &e, 1, -1);
        ssize_t n = read(fd, b, sizeof b);
        if (n <= 0) return 0;
        if (b[0] == 'P') write(fd, r, sizeof r - 1); else write(fd, g, sizeof g - 1);
    }
}
EOF
cc -O2 -o "$work/floor" "$work/floor.c"

one() { # binary kind -> median us
  local bin=$1 kind=$2 sock=$work/api.sock pid out
  rm -f "$sock"
  if [ "$bin" = floor ]; then "$work/floor" "$sock" & else "$bin" --api-sock "$sock" >/dev/null 2>&1 & fi
  pid=$!
  for _ in $(seq 500); do [ -S "$sock" ] && break; sleep 0.01; done
  out=$("$work/api-rtt" "$sock" "$N" "$kind") || out=""
  kill $pid 2>/dev/null; wait $pid 2>/dev/null || true
  sed -n 's/.*median_us=\([0-9.]*\).*/\1/p' <<<"$out"
}

for ((r = 1; r <= ROUNDS; r++)); do
  for kind in $KINDS; do
    for bin in "$@"; do
      m=$(one "$bin" "$kind")
      echo "round $r $kind $(basename "$bin") $m"
      echo "$kind $(basename "$bin") $m" >>"$work/all"
    done
  done
done
echo "== median of $ROUNDS run medians, us ($N requests each, one connection)"
for kind in $KINDS; do
  for bin in "$@"; do
    b=$(basename "$bin")
    awk -v k="$kind" -v b="$b" '$1 == k && $2 == b && $3 != "" { print $3 }' "$work/all" | sort -n | awk -v k="$kind" -v b="$b" '
      { v[++n] = $1 } END {
        if (!n) { printf "  %-8s %-16s no run answered\n", k, b; exit }
        m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        printf "  %-8s %-16s %7.1f  (runs %d, min %.1f, max %.1f)\n", k, b, m, n, v[1], v[n] }'
  done
done
