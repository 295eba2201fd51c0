#!/usr/bin/env python3
"""A stand-in for Firecracker's MMDS, for run-qemu-devices.sh (QEMU has no MMDS).

Serves HTTP/1.1 (keep-alive, Content-Length) on ADDR:80 inside the test network
namespace. V1: GET /latest/meta-data/ -> 200 "ami-id\ninstance-id\nlocal-ipv4\n".
V2: PUT /latest/api/token with X-metadata-token-ttl-seconds -> 200 <token>; GET needs
X-metadata-token: <token>, else 401. Usage: mmds-mock.py ADDR v1|v2 READYFILE
"""
import http.server
import secrets
import sys

ADDR, MODE, READY = sys.argv[1], sys.argv[2], sys.argv[3]
TOKENS = set()
META = {"/latest/meta-data/": b"ami-id\ninstance-id\nlocal-ipv4\n",
        "/latest/meta-data/ami-id": b"ami-flint-testguest"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("mmds-mock: " + (fmt % args) + "\n")
        sys.stderr.flush()

    def reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        ttl = self.headers.get("X-metadata-token-ttl-seconds")
        if self.path == "/latest/api/token" and ttl and ttl.isdigit() and 1 <= int(ttl) <= 21600:
            tok = secrets.token_urlsafe(32)
            TOKENS.add(tok)
            self.reply(200, tok.encode())
        else:
            self.reply(400, b"Bad token request")

    def do_GET(self):
        if MODE == "v2" and self.headers.get("X-metadata-token") not in TOKENS:
            self.reply(401, b"Unauthorized")
        elif self.path in META:
            self.reply(200, META[self.path])
        else:
            self.reply(404, b"Not found")


srv = http.server.ThreadingHTTPServer((ADDR, 80), Handler)
with open(READY, "w") as f:
    f.write("ready\n")
srv.serve_forever()
