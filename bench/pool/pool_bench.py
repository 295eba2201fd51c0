#!/usr/bin/env python3
"""flint-pool benchmark: warm-slot invocation latency against a VM per request, cold start from a snapshot clone,
slots started per second, host memory per warm slot.

Needs a KVM host (or the nested-KVM VM: tests/nested-kvm), root (flint-jailer), and from `bash scripts/setup.sh` and
`make -C tests/testguest`: artifacts/bin/{flint,flint-jailer,flint-pool}, tests/testguest/out/testguest.elf. Every
VM is the test guest in agent mode with its `upper` handler (docs/agent-protocol.md), so the numbers are the pool's
and the VMM's, not a Linux guest's boot.

  sudo python3 bench/pool/pool_bench.py [--quick] [--out artifacts/bench/pool.json]

Prints a markdown table; --out also writes the raw numbers as JSON. Standard library only.
"""
import argparse, http.client, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "artifacts", "bin")
GUEST = os.path.join(ROOT, "tests", "testguest", "out", "testguest.elf")
BOOT_ARGS = "tg.tests=serial tg.boottimer=0"
HANDLER = "tg.agent=5005 tg.agent.handler=upper"


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout=120):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def call(conn, method, path, body=None):
    if isinstance(body, str):
        body = body.encode()
    conn.request(method, path, body=body, headers={"Content-Length": str(len(body or b""))})
    r = conn.getresponse()
    data = r.read()
    return r.status, data


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def summary(xs):
    return {"n": len(xs), "p50_ms": round(pct(xs, 50), 3), "p99_ms": round(pct(xs, 99), 3),
            "mean_ms": round(statistics.mean(xs), 3)}


# ---- the agent protocol, for the VM-per-request row (no pool in the way) ----

def agent_connect(uds, deadline):
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(uds)
            s.sendall(b"CONNECT 5005\n")
            f = s.makefile("rb")
            line = f.readline(64)
            if line.startswith(b"OK "):
                return s, f
        except OSError:
            pass
        s.close()
        if time.monotonic() > deadline:
            raise TimeoutError("agent never answered on " + uds)
        time.sleep(0.002)


def agent_invoke(s, f, i, payload):
    s.sendall(b"INVOKE %d %d\n" % (i, len(payload)) + payload)
    head = f.readline(128).split()
    assert head[0] == b"RESULT" and int(head[1]) == i, head
    return f.read(int(head[3]))


def vm_per_request(n, work):
    """flint (not jailed, as the cheapest way to start a VM) per request: exec, boot, agent, one INVOKE, kill."""
    lat = []
    for i in range(n):
        d = tempfile.mkdtemp(dir=work)
        uds = os.path.join(d, "v.sock")
        cfg = os.path.join(d, "vm.json")
        with open(cfg, "w") as fh:
            json.dump({"boot-source": {"kernel_image_path": GUEST, "boot_args": BOOT_ARGS + " " + HANDLER},
                       "drives": [], "machine-config": {"vcpu_count": 1, "mem_size_mib": 64},
                       "vsock": {"guest_cid": 3, "uds_path": uds}}, fh)
        t0 = time.monotonic()
        p = subprocess.Popen([os.path.join(BIN, "flint"), "--no-api", "--config-file", cfg],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not os.path.exists(uds):
                if p.poll() is not None:
                    raise RuntimeError("flint exited with %s" % p.returncode)
                time.sleep(0.0005)
            s, f = agent_connect(uds, t0 + 120)
            out = agent_invoke(s, f, 1, b"request %d" % i)
            lat.append((time.monotonic() - t0) * 1000)
            assert out == (b"REQUEST %d" % i), out
            s.close()
        finally:
            p.kill()
            p.wait()
            shutil.rmtree(d, ignore_errors=True)
    return lat


def make_snapshot(work):
    """A Full snapshot of the test guest in agent mode, taken with no agent connection open (docs/pool.md)."""
    api = os.path.join(work, "snap-api.sock")
    uds = os.path.join(work, "snap-v.sock")
    state, mem = os.path.join(work, "agent.state"), os.path.join(work, "agent.mem")
    p = subprocess.Popen([os.path.join(BIN, "flint"), "--api-sock", api],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not os.path.exists(api):
            time.sleep(0.005)
        c = UnixHTTP(api)
        for m, path, body in [
                ("PUT", "/boot-source", {"kernel_image_path": GUEST, "boot_args": BOOT_ARGS + " " + HANDLER}),
                ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64}),
                ("PUT", "/vsock", {"guest_cid": 3, "uds_path": uds}),
                ("PUT", "/actions", {"action_type": "InstanceStart"})]:
            st, data = call(c, m, path, json.dumps(body))
            assert st == 204, (path, st, data)
        s, _ = agent_connect(uds, time.monotonic() + 120)
        s.sendall(b"PING\n")
        assert s.recv(16) == b"PONG\n"
        s.close()
        time.sleep(0.3)
        for m, path, body in [("PATCH", "/vm", {"state": "Paused"}),
                              ("PUT", "/snapshot/create", {"snapshot_type": "Full", "snapshot_path": state, "mem_file_path": mem})]:
            st, data = call(c, m, path, json.dumps(body))
            assert st == 204, (path, st, data)
        return state, mem
    finally:
        p.kill()
        p.wait()


class Pool:
    def __init__(self, work):
        self.sock = os.path.join(work, "pool.sock")
        self.proc = subprocess.Popen([os.path.join(BIN, "flint-pool"), "--api-sock", self.sock, "--pool-dir", os.path.join(work, "p")],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "pool.log"), "w"))
        while not os.path.exists(self.sock):
            assert self.proc.poll() is None, "flint-pool exited; see pool.log"
            time.sleep(0.01)
        self.c = UnixHTTP(self.sock)

    def register(self, name, **cfg):
        st, data = call(self.c, "PUT", "/functions/" + name, json.dumps(cfg))
        assert st == 201, data

    def info(self, name):
        return json.loads(call(self.c, "GET", "/functions/" + name)[1])

    def wait_idle(self, name, n, timeout=600):
        t0 = time.monotonic()
        while self.info(name)["slots_by_state"]["idle"] < n:
            assert time.monotonic() - t0 < timeout, self.info(name)
            time.sleep(0.005)
        return time.monotonic() - t0

    def invoke(self, name, payload, conn=None):
        st, data = call(conn or self.c, "POST", "/functions/%s/invoke" % name, payload)
        assert st == 200, (st, data)
        return data

    def drain(self, name):
        st, _ = call(self.c, "DELETE", "/functions/" + name)
        assert st == 204

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)


def timed_invokes(pool, name, n, clients=1):
    import threading
    lat, lock = [], threading.Lock()

    def worker(k):
        conn = UnixHTTP(pool.sock)
        for i in range(n // clients):
            p = "c%d i%d" % (k, i)
            t0 = time.monotonic()
            out = pool.invoke(name, p, conn)
            dt = (time.monotonic() - t0) * 1000
            assert out == p.upper().encode(), out
            with lock:
                lat.append(dt)
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in ts: t.start()
    for t in ts: t.join()
    return lat


def slot_memory(pool, name):
    """PSS and RSS (MiB) of each slot's flint process: guest RAM the guest touched + the VMM."""
    pss, rss = [], []
    for s in pool.info(name)["slots"]:
        with open("/proc/%d/smaps_rollup" % s["pid"]) as f:
            kv = {l.split(":")[0]: int(l.split()[1]) for l in f if l.split(":")[0] in ("Rss", "Pss")}
        pss.append(kv["Pss"] / 1024)
        rss.append(kv["Rss"] / 1024)
    return {"slots": len(pss), "pss_mib_mean": round(statistics.mean(pss), 2), "rss_mib_mean": round(statistics.mean(rss), 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    ap.add_argument("--out")
    a = ap.parse_args()
    for f in ["flint", "flint-jailer", "flint-pool"]:
        assert os.path.exists(os.path.join(BIN, f)), "artifacts/bin/%s missing: bash scripts/setup.sh" % f
    assert os.path.exists(GUEST), "make -C tests/testguest"
    assert os.path.exists("/dev/kvm"), "needs /dev/kvm"
    warm_n, cold_n, slots_n = (100, 5, 4) if a.quick else (1000, 30, 16)
    work = tempfile.mkdtemp(prefix="fpb-", dir="/tmp")
    class Rows(dict):
        """Prints each row as it is measured, so a run cut short (a nested L1's time limit) keeps what it got."""
        def __setitem__(self, k, v):
            super().__setitem__(k, v)
            print("row %s %s" % (k, json.dumps(v)), flush=True)
    res = Rows()
    boot = dict(kernel_image_path=GUEST, boot_args=BOOT_ARGS, handler_args=HANDLER, vcpu_count=1, mem_size_mib=64, ready_timeout_s=300)
    pool = Pool(work)
    try:
        state, mem = make_snapshot(work)
        snap = dict(snapshot={"snapshot_path": state, "mem_file_path": mem}, ready_timeout_s=300)

        pool.register("warm", min_warm=1, max_slots=1, **boot)
        pool.wait_idle("warm", 1)
        timed_invokes(pool, "warm", 20)  # warm-up
        res["warm_invoke_1_client"] = summary(timed_invokes(pool, "warm", warm_n))
        pool.drain("warm")
        pool.register("warm8", min_warm=8, max_slots=8, **boot)
        pool.wait_idle("warm8", 8)
        res["warm_invoke_8_clients"] = summary(timed_invokes(pool, "warm8", warm_n, clients=8))
        pool.drain("warm8")

        res["vm_per_request_unjailed_boot"] = summary(vm_per_request(cold_n, work))
        # min_warm 0 and one invocation per slot: every invocation starts its own slot (jailer + flint + boot/restore).
        # The queue timeout must outlast a slot's start: each invocation here waits for the slot it starts (nested: > 5 s).
        pool.register("coldboot", min_warm=0, max_slots=1, max_invocations_per_slot=1, queue_timeout_ms=600000, **boot)
        res["pool_cold_boot_per_request"] = summary(timed_invokes(pool, "coldboot", cold_n))
        pool.drain("coldboot")
        pool.register("coldsnap", min_warm=0, max_slots=1, max_invocations_per_slot=1, queue_timeout_ms=600000, **snap)
        res["pool_snapshot_clone_per_request"] = summary(timed_invokes(pool, "coldsnap", cold_n))
        pool.drain("coldsnap")

        for kind, cfg in [("boot", boot), ("snapshot", snap)]:
            name = "many" + kind
            t0 = time.monotonic()
            pool.register(name, min_warm=slots_n, max_slots=slots_n, **cfg)
            pool.wait_idle(name, slots_n)
            took = time.monotonic() - t0  # from the PUT (which copies the function's files) to all slots ready
            res["slots_started_per_s_" + kind] = {"slots": slots_n, "seconds": round(took, 3), "per_s": round(slots_n / took, 2)}
            timed_invokes(pool, name, slots_n * 4, clients=slots_n)  # every slot has served: its touched memory is in
            res["memory_per_warm_slot_" + kind] = slot_memory(pool, name)
            pool.drain(name)
        res["pool_metrics_slot_start"] = [l for l in call(pool.c, "GET", "/metrics?format=prometheus")[1].decode().splitlines()
                                          if l.startswith("flint_pool_slot_start_duration_milliseconds_sum") or
                                          l.startswith("flint_pool_slot_start_duration_milliseconds_count")]
    finally:
        pool.stop()
        shutil.rmtree(work, ignore_errors=True)

    print("| row | n | p50 ms | p99 ms |\n|---|---|---|---|")
    for k in ["warm_invoke_1_client", "warm_invoke_8_clients", "vm_per_request_unjailed_boot",
              "pool_cold_boot_per_request", "pool_snapshot_clone_per_request"]:
        r = res.get(k)
        if r: print("| %s | %d | %.2f | %.2f |" % (k, r["n"], r["p50_ms"], r["p99_ms"]))
    print("\n| row | value |\n|---|---|")
    for kind in ["boot", "snapshot"]:
        if "memory_per_warm_slot_" + kind not in res: continue
        r = res["slots_started_per_s_" + kind]
        print("| slots started per second (%s, %d at once) | %.2f/s (%.2f s) |" % (kind, r["slots"], r["per_s"], r["seconds"]))
        m = res["memory_per_warm_slot_" + kind]
        print("| host memory per warm slot (%s): PSS / RSS | %.2f / %.2f MiB |" % (kind, m["pss_mib_mean"], m["rss_mib_mean"]))
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
