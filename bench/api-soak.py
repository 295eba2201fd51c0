#!/usr/bin/env python3
"""API soak: drives the real `artifacts/bin/flint` with many `GET /` requests and prints its RSS as it goes.

    python3 bench/api-soak.py [--requests N] [--every K] [--new-conn-every M] [--binary PATH]

Starts flint with only an API socket (no VM), sends N `GET /` requests (pipelined in small batches over one
keep-alive connection; every M-th batch on a fresh connection, so accept/close is soaked too), and prints the
process's VmRSS after a warm-up and every K requests. A leak shows as RSS that keeps climbing after warm-up; a
healthy server levels off (the managed heap and the runtime settle within the first ~100k requests).
This is a benchmark, not a test: it asserts nothing and is not run by scripts/test.sh.
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

REQ = b"GET / HTTP/1.1\r\nAccept: application/json\r\n\r\n"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(path)
        self.buf = b""

    def batch(self, n):
        """Sends n pipelined GET / and reads the n responses; returns how many were 200."""
        self.s.sendall(REQ * n)
        ok = 0
        for _ in range(n):
            while True:
                end = self.buf.find(b"\r\n\r\n")
                if end >= 0:
                    head = self.buf[:end].decode("ascii", "replace")
                    length = 0
                    for line in head.split("\r\n")[1:]:
                        k, _, v = line.partition(":")
                        if k.strip().lower() == "content-length":
                            length = int(v)
                    total = end + 4 + length
                    if len(self.buf) >= total:
                        if head.startswith("HTTP/1.1 200"):
                            ok += 1
                        self.buf = self.buf[total:]
                        break
                chunk = self.s.recv(65536)
                if not chunk:
                    raise IOError("server closed the connection")
                self.buf += chunk
        return ok

    def close(self):
        self.s.close()


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--every", type=int, default=100_000, help="print RSS every this many requests")
    ap.add_argument("--warmup", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=16, help="requests pipelined per write")
    ap.add_argument("--new-conn-every", type=int, default=64, help="open a fresh connection every this many batches")
    ap.add_argument("--level", default="Warning", help="flint's log level (Info logs a line per request, to a file here)")
    ap.add_argument("--binary", default=os.path.join(root, "artifacts", "bin", "flint"))
    a = ap.parse_args()
    if not os.access(a.binary, os.X_OK):
        sys.exit(f"api-soak: {a.binary} is missing: run `bash scripts/setup.sh` first")

    d = tempfile.mkdtemp(prefix="flint-soak-")
    sock = os.path.join(d, "api.sock")
    log = open(os.path.join(d, "flint.log"), "wb")
    # Warning by default: Info logs one line per request, which measures the log as much as the server.
    p = subprocess.Popen([a.binary, "--api-sock", sock, "--level", a.level], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(500):
            if os.path.exists(sock):
                break
            time.sleep(0.01)
        else:
            sys.exit("api-soak: flint did not create its API socket")
        print(f"api-soak: flint pid {p.pid}, RSS at start {rss_kib(p.pid) / 1024:.1f} MiB", flush=True)

        done = ok = batches = 0
        conn = Conn(sock)
        t0 = time.monotonic()
        next_mark = a.warmup
        while done < a.requests:
            n = min(a.batch, a.requests - done)
            ok += conn.batch(n)
            done += n
            batches += 1
            if batches % a.new_conn_every == 0:
                conn.close()
                conn = Conn(sock)
            if done >= next_mark:
                label = "after warm-up" if next_mark == a.warmup else f"after {done:>9,}"
                rate = done / (time.monotonic() - t0)
                print(f"api-soak: RSS {label}: {rss_kib(p.pid) / 1024:7.1f} MiB   ({rate:,.0f} req/s)", flush=True)
                next_mark = a.every if next_mark == a.warmup else next_mark + a.every
        conn.close()
        print(f"api-soak: {done:,} requests, {ok:,} answered 200, {batches // a.new_conn_every + 1:,} connections, "
              f"final RSS {rss_kib(p.pid) / 1024:.1f} MiB", flush=True)
        if ok != done:
            sys.exit("api-soak: some requests were not answered 200")
    finally:
        p.terminate()
        p.wait(10)
        log.close()
        for f in (sock, log.name):
            if os.path.exists(f):
                os.unlink(f)
        os.rmdir(d)


if __name__ == "__main__":
    main()
