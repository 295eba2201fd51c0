#!/usr/bin/env python3
"""Flint's KVM tiers on a machine that has /dev/kvm but no .NET (the lent device machine).

The xunit KVM tests (tests/Flint.Vmm.Tests) need the .NET SDK; this script drives the same checks with the carried
static binaries (flint, flint-jailer), the test guest ELF, its disk tool, the guest kernel + rootfs and, for the
side-by-side numbers, a carried QEMU (its own loader and libraries, so the host's libc does not matter).
Everything comes from one bundle made by bench/device/pack.sh. Stdlib only.

    python3 bench/device/kvm_check.py BUNDLE.tar.xz     (env OUT: where the JSON summary and logs go)
    FORCE=1 ...                                          run the checks even without /dev/kvm (to test this script)
    ONLY=tg_blk,vsock ...                                run only these checks (function names)

Exit 0 whether checks pass or not; the summary's "checks" say which did. Prints NO-KVM and stops early when the
machine has no usable /dev/kvm, so a probe costs seconds.
"""
import json, os, re, signal, socket, statistics, subprocess, sys, tarfile, tempfile, threading, time

OUT = os.environ.get("OUT") or tempfile.mkdtemp(prefix="kvmcheck-out-")
W = tempfile.mkdtemp(prefix="kvmcheck-")
summary = {"env": {}, "checks": {}, "measures": {}}
LOG = open(os.path.join(OUT, "kvm-check.log"), "w")


def log(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True)
    LOG.write(s + "\n"); LOG.flush()


def sh(cmd, timeout=30):
    try:
        p = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout)
        return p.returncode, (p.stdout + p.stderr).strip()
    except subprocess.TimeoutExpired:
        return 124, "timeout"


def check(name, ok, detail=""):
    summary["checks"][name] = {"ok": bool(ok), "detail": detail[-600:] if isinstance(detail, str) else detail}
    log(f"CHECK {name}: {'PASS' if ok else 'FAIL'} {detail if ok else detail[-2000:] if isinstance(detail, str) else detail}")


def measure(name, value, unit, note=""):
    summary["measures"][name] = {"value": value, "unit": unit, "note": note}
    log(f"MEASURE {name} = {value} {unit} {note}")


def save():
    with open(os.path.join(OUT, "kvm-check.json"), "w") as f:
        json.dump(summary, f, indent=1)


# ------------------------------------------------------------------------------------------------ environment
def environment():
    e = summary["env"]
    e["uname"] = sh("uname -a")[1]
    cpu = open("/proc/cpuinfo").read()
    e["cpu"] = (re.search(r"model name\s*:\s*(.*)", cpu) or [None, "?"])[1]
    e["cpus"] = os.cpu_count()
    flags = (re.search(r"^flags\s*:\s*(.*)$", cpu, re.M) or [None, ""])[1].split()
    e["vmx_svm"] = [f for f in ("vmx", "svm", "hypervisor") if f in flags]
    misc = open("/proc/misc").read()
    e["proc_misc_kvm"] = [l for l in misc.splitlines() if l.split()[-1:] == ["kvm"]]
    e["kvm_modules"] = [m for m in ("kvm", "kvm_intel", "kvm_amd", "kvm_pvm") if os.path.isdir(f"/sys/module/{m}")]
    e["dev_kvm_before"] = os.path.exists("/dev/kvm")
    if not os.path.exists("/dev/kvm") and e["proc_misc_kvm"]:
        minor = e["proc_misc_kvm"][0].split()[0]
        e["mknod"] = sh(f"mknod /dev/kvm c 10 {minor} && chmod 666 /dev/kvm")
    usable = False
    if os.path.exists("/dev/kvm"):
        try:
            fd = os.open("/dev/kvm", os.O_RDWR); os.close(fd); usable = True
        except OSError as x:
            e["dev_kvm_open"] = str(x)
    e["kvm_usable"] = usable
    e["tools"] = {t: bool(sh(f"command -v {t}")[0] == 0) for t in ("ip", "ping", "gcc", "curl")}
    e["tun"] = os.path.exists("/dev/net/tun")
    log("ENV", json.dumps(e))
    return usable


# ------------------------------------------------------------------------------------------------ running flint
class Run:
    def __init__(self, rc, out, err, elapsed, marks):
        self.rc, self.out, self.err, self.elapsed, self.marks = rc, out, err, elapsed, marks

    @property
    def all(self):
        return self.out + "\n--stderr--\n" + self.err


def run(argv, timeout=60, marks=(), stop_at=None, cwd=None, on_line=None):
    """Runs argv; records when each regex in marks first shows in stdout (seconds from spawn); kills at stop_at;
    calls on_line(line) for each stdout line."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=cwd)
    seen, out, err = {}, [], []

    def pump_err():
        for l in p.stderr:
            err.append(l.decode(errors="replace"))
    te = threading.Thread(target=pump_err, daemon=True); te.start()
    killer = threading.Timer(timeout, lambda: p.kill()); killer.start()
    for raw in p.stdout:
        l = raw.decode(errors="replace")
        out.append(l)
        if on_line: on_line(l)
        for m in marks:
            if m not in seen and re.search(m, l):
                seen[m] = time.monotonic() - t0
        if stop_at and stop_at in seen:
            p.kill()
            break
    p.wait(); killer.cancel(); te.join(2)
    return Run(p.returncode, "".join(out), "".join(err), time.monotonic() - t0, seen)


def cfg(path, kernel, args, drives=(), vcpus=1, mem=64, extra=""):
    d = ",".join(json.dumps(x) for x in drives)
    with open(path, "w") as f:
        f.write('{"boot-source": {"kernel_image_path": %s, "boot_args": %s}, "drives": [%s], '
                '"machine-config": {"vcpu_count": %d, "mem_size_mib": %d}%s}'
                % (json.dumps(kernel), json.dumps(args), d, vcpus, mem, extra))
    return path


def drive(id, path, root=False, ro=False, writeback=False):
    d = {"drive_id": id, "path_on_host": path, "is_root_device": root, "is_read_only": ro}
    if writeback: d["cache_type"] = "Writeback"   # offers FLUSH (Unsafe, the default, does not)
    return d


def lines_ok(out, lines):
    missing = [l for l in lines if l not in out.splitlines()]
    return (not missing and "\nFAIL " not in "\n" + out and re.search(r"fail=0", out) is not None), missing


def pass_lines(*names):
    return ["PASS " + n for n in names]


# ------------------------------------------------------------------------------------------------ checks
def tg_blk(B):
    for ro in (False, True):
        disk = f"{W}/disk.img"; sh(f"{B}/mkdisk {disk} 64")
        c = cfg(f"{W}/tg.json", f"{B}/testguest.elf", "tg.tests=serial,blk", [drive("data", disk, ro=ro, writeback=True)])
        r = run([f"{B}/flint", "--no-api", "--boot-timer", "--config-file", c], 60)
        want = pass_lines("blk-init", "blk-read", "blk-id", "blk-ro" if ro else "blk-write", "blk-unsupp", "blk-irq", "blk")
        if not ro: want += pass_lines("blk-flush")
        ok, missing = lines_ok(r.out, want)
        sh(f"{B}/mkdisk {W}/expect.img 64" + ("" if ro else " 3"))
        same = sh(f"cmp -s {disk} {W}/expect.img")[0] == 0
        bt = re.search(r"Guest-boot-time = +(\d+) us", r.out)
        check("testguest-blk-" + ("ro" if ro else "rw"), r.rc == 0 and ok and same and bt is not None,
              f"rc={r.rc} missing={missing} disk_as_expected={same} boot_timer={bt.group(0) if bt else None}\n{r.all[-1500:]}")


def tg_smp(B):
    disk = f"{W}/disk.img"; sh(f"{B}/mkdisk {disk} 64")
    c = cfg(f"{W}/smp.json", f"{B}/testguest.elf", "tg.tests=serial,blk", [drive("data", disk)], vcpus=4, mem=3584)
    r = run([f"{B}/flint", "--no-api", "--config-file", c], 60)
    ok, missing = lines_ok(r.out, pass_lines("blk"))
    check("testguest-smp4-3584MiB", r.rc == 0 and ok, f"rc={r.rc} missing={missing}\n{r.all[-1500:]}")


def exec_to_first_instruction(B):
    # tg.boottimer=first: the test guest writes the boot timer before anything else, so flint's Guest-boot-time is
    # InstanceStart -> the guest's first instructions, and the time of that log line from spawn is exec -> first
    # instructions (+ one log write).
    c = cfg(f"{W}/first.json", f"{B}/testguest.elf", "tg.tests=serial tg.boottimer=first")
    bt, ex = [], []
    for _ in range(10):
        r = run([f"{B}/flint", "--no-api", "--boot-timer", "--config-file", c], 30, marks=("Guest-boot-time",))
        m = re.search(r"Guest-boot-time = +(\d+) us", r.out)
        if r.rc == 0 and m and "Guest-boot-time" in r.marks:
            bt.append(int(m.group(1)) / 1000.0); ex.append(r.marks["Guest-boot-time"] * 1000)
    check("exec-to-first-instruction", len(bt) == 10, f"{len(bt)}/10 runs with a boot-timer line")
    if bt:
        measure("test guest: InstanceStart -> first guest instructions (boot timer, median of %d)" % len(bt), round(statistics.median(bt), 2), "ms", f"min {min(bt):.2f}")
        measure("test guest: exec -> first guest instructions (log line seen by the parent, median)", round(statistics.median(ex), 2), "ms", f"min {min(ex):.2f}")


def pio_rate(B):
    # exits/s = (N_big - N_small) / (t_big - t_small): boot and teardown cancel out.
    big, small = 300_000, 1
    res = {}
    for seccomp in (True, False):
        ts = {big: [], small: []}
        for _ in range(2):
            for n in (small, big):
                c = cfg(f"{W}/pio.json", f"{B}/testguest.elf", f"tg.tests=pio tg.pio={n} tg.boottimer=0")
                args = [f"{B}/flint", "--no-api", "--config-file", c] + ([] if seccomp else ["--no-seccomp"])
                r = run(args, 120)
                if r.rc == 0 and f"pio done {n}" in r.out: ts[n].append(r.elapsed)
                else: log("pio run failed", r.all[-800:])
        if ts[big] and ts[small]:
            rate = (big - small) / (statistics.median(ts[big]) - statistics.median(ts[small]))
            res[seccomp] = rate
            measure(f"PIO exits/s through the full device path, seccomp {'on' if seccomp else 'off'}", int(rate), "exits/s",
                    f"{big} outb; runs big {['%.3f' % t for t in ts[big]]} small {['%.3f' % t for t in ts[small]]}")
    check("pio-exit-path", len(res) == 2, str(res))
    if len(res) == 2: measure("seccomp filter cost on the PIO exit", round((1 / res[True] - 1 / res[False]) * 1e9), "ns/exit")


def cpu_template(B):
    """A custom CPU template (CPUID + MSR bitmaps) boots the test guest; a missing KVM capability is refused (152)."""
    def tmpl(cap):
        return (', "cpu-config": {"kvm_capabilities": ["%s"], "cpuid_modifiers": [{"leaf": "0x1", "subleaf": "0x0", "flags": 0, '
                '"modifiers": [{"register": "ecx", "bitmap": "0b1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}]}], '
                '"msr_modifiers": [{"addr": "0x1a0", "bitmap": "0b1"}]}' % cap)
    r1 = run([f"{B}/flint", "--no-api", "--config-file", cfg(f"{W}/ct1.json", f"{B}/testguest.elf", "tg.tests=serial", extra=tmpl("1"))], 60)
    r2 = run([f"{B}/flint", "--no-api", "--config-file", cfg(f"{W}/ct2.json", f"{B}/testguest.elf", "tg.tests=serial", extra=tmpl("100000"))], 60)
    check("custom-cpu-template", r1.rc == 0 and "fail=0" in r1.out and r2.rc == 152 and "lacks capability 100000" in r2.all,
          f"with template rc={r1.rc}; missing cap rc={r2.rc}\n{r1.all[-800:]}\n{r2.all[-500:]}")


def huge_pages(B):
    """The test guest on 2M hugetlbfs pages (reserves 40 and puts the count back)."""
    nr = "/proc/sys/vm/nr_hugepages"
    try:
        before = open(nr).read().strip(); open(nr, "w").write(str(int(before) + 40))
    except OSError as x:
        check("huge-pages-2M", False, f"cannot reserve huge pages here: {x}"); return
    try:
        disk = f"{W}/hp.img"; sh(f"{B}/mkdisk {disk} 64")
        c = cfg(f"{W}/hp.json", f"{B}/testguest.elf", "tg.tests=serial,blk", [drive("data", disk)])
        text = open(c).read()  # read before reopening for write: open(c, "w") truncates first
        open(c, "w").write(text.replace('"mem_size_mib": 64', '"mem_size_mib": 64, "huge_pages": "2M"'))
        r = run([f"{B}/flint", "--no-api", "--config-file", c], 60)
        check("huge-pages-2M", r.rc == 0 and "fail=0" in r.out, f"rc={r.rc}\n{r.all[-1200:]}")
    finally:
        open(nr, "w").write(before)


def rng_balloon(B):
    c = cfg(f"{W}/rb.json", f"{B}/testguest.elf", "tg.tests=rng,balloon tg.balloon.wait=2000 tg.boottimer=0", mem=128,
            extra=', "entropy": {}, "balloon": {"amount_mib": 8, "deflate_on_oom": false, "stats_polling_interval_s": 1}')
    r = run([f"{B}/flint", "--no-api", "--config-file", c], 60)
    ok, missing = lines_ok(r.out, pass_lines("rng", "balloon-stats-posted", "balloon-inflate", "balloon-deflate", "balloon-discarded"))
    check("testguest-rng-balloon", r.rc == 0 and ok, f"rc={r.rc} missing={missing}\n{r.all[-1500:]}")


def vsock(B):
    uds = f"{W}/v.sock"
    for p in (uds, uds + "_52"):
        if os.path.exists(p): os.unlink(p)
    lst = socket.socket(socket.AF_UNIX); lst.bind(uds + "_52"); lst.listen(1); lst.settimeout(60)

    def echo():
        try:
            c, _ = lst.accept(); d = c.recv(256); c.sendall(d); c.close()
        except OSError as x:
            log("vsock echo:", x)
    threading.Thread(target=echo, daemon=True).start()
    got = {}

    def host():
        t0 = time.monotonic()
        while not os.path.exists(uds) and time.monotonic() - t0 < 60: time.sleep(0.02)
        time.sleep(0.3)
        for _ in range(150):
            try:
                s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(uds)
                s.sendall(b"CONNECT 1234\n"); a = s.recv(256).decode()
                if not a.startswith("OK "): s.close(); time.sleep(0.2); continue
                # round trips: the guest echoes? it answers once; measure that one
                t = time.monotonic(); s.sendall(b"hello-from-host\n"); got["reply"] = s.recv(256).decode()
                got["rtt_us"] = (time.monotonic() - t) * 1e6
                s.close(); return
            except OSError:
                time.sleep(0.2)
    th = threading.Thread(target=host, daemon=True); th.start()
    c = cfg(f"{W}/vs.json", f"{B}/testguest.elf", "tg.tests=vsock tg.vsock.port=52 tg.vsock.listen=1234 tg.vsock.listenwait=20000 tg.boottimer=0",
            mem=128, extra=', "vsock": {"guest_cid": 3, "uds_path": %s}' % json.dumps(uds))
    r = run([f"{B}/flint", "--no-api", "--config-file", c], 90)
    th.join(10)
    ok, missing = lines_ok(r.out, pass_lines("vsock-connect", "vsock-echo", "vsock-accept"))
    check("testguest-vsock-both-ways", r.rc == 0 and ok and "hello-from-host" in got.get("reply", ""),
          f"rc={r.rc} missing={missing} host_got={got}\n{r.all[-1500:]}")
    lst.close()


def netns_tap(ns):
    sh(f"ip netns del {ns}")
    return sh(f"ip netns add {ns} && ip netns exec {ns} ip tuntap add dev tap0 mode tap && "
              f"ip netns exec {ns} ip addr add 172.16.0.1/30 dev tap0 && ip netns exec {ns} ip link set tap0 up && "
              f"ip netns exec {ns} ip link set lo up")


def net_mmds(B):
    if not summary["env"]["tools"]["ip"] or not summary["env"]["tun"]:
        check("testguest-net-mmds-v2", False, "skipped: no `ip` tool or /dev/net/tun on this machine"); return
    rc, o = netns_tap("flintdev")
    if rc != 0: check("testguest-net-mmds-v2", False, "netns/tap setup failed: " + o); return
    meta = f"{W}/meta.json"; open(meta, "w").write('{"latest": {"meta-data": {"ami-id": "ami-flint"}}}')
    c = cfg(f"{W}/net.json", f"{B}/testguest.elf", "tg.tests=net tg.mmds=1 tg.mmds.v2=1 tg.boottimer=0", mem=128,
            extra=TAP0 + ', "mmds-config": {"version": "V2", "network_interfaces": ["eth0"]}')
    r = run(["ip", "netns", "exec", "flintdev", f"{B}/flint", "--no-api", "--metadata", meta, "--config-file", c], 90)
    ok, missing = lines_ok(r.out, pass_lines("net-arp", "mmds-v2", "mmds-v2-401"))
    check("testguest-net-mmds-v2", r.rc == 0 and ok, f"rc={r.rc} missing={missing}\n{r.all[-1500:]}")


def http(sock, method, path, body=None):
    s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sock)
    b = (body or "").encode()
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(b)}\r\n\r\n".encode() + b)
    data = b""
    while True:
        d = s.recv(65536)
        if not d: break
        data += d
        h, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"Content-Length: (\d+)", h, re.I)
            if len(rest) >= (int(m.group(1)) if m else 0): break
    s.close()
    return int(data[9:12]), data.partition(b"\r\n\r\n")[2].decode(errors="replace")


def thread_cpu(pid, prefix):
    tot = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            if open(f"/proc/{pid}/task/{t}/comm").read().startswith(prefix):
                f = open(f"/proc/{pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()
                tot += int(f[11]) + int(f[12])
        except OSError:
            pass
    return tot  # clock ticks


def api_boot_pause_resume(B):
    sock = f"{W}/api.sock"
    p = subprocess.Popen([f"{B}/flint", "--api-sock", sock, "--id", "devcheck"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        t0 = time.monotonic()
        while not os.path.exists(sock) and time.monotonic() - t0 < 10: time.sleep(0.01)
        steps = [http(sock, "PUT", "/boot-source", json.dumps({"kernel_image_path": f"{B}/testguest.elf",
                                                                "boot_args": "tg.tests=pio tg.pio=4000000000 tg.boottimer=0"})),
                 http(sock, "PUT", "/machine-config", '{"vcpu_count": 1, "mem_size_mib": 64}'),
                 http(sock, "PUT", "/actions", '{"action_type": "InstanceStart"}')]
        running = http(sock, "GET", "/")
        time.sleep(0.5); a = thread_cpu(p.pid, "fc_vcpu"); time.sleep(1.0); b = thread_cpu(p.pid, "fc_vcpu")
        paused = http(sock, "PATCH", "/vm", '{"state": "Paused"}'); st_p = http(sock, "GET", "/")
        time.sleep(0.2); c = thread_cpu(p.pid, "fc_vcpu"); time.sleep(1.0); d = thread_cpu(p.pid, "fc_vcpu")
        resumed = http(sock, "PATCH", "/vm", '{"state": "Resumed"}')
        time.sleep(0.2); e = thread_cpu(p.pid, "fc_vcpu"); time.sleep(1.0); f = thread_cpu(p.pid, "fc_vcpu")
        late = http(sock, "PUT", "/boot-source", json.dumps({"kernel_image_path": f"{B}/testguest.elf"}))
        ok = ([s for s, _ in steps] == [204, 204, 204] and '"Running"' in running[1] and paused[0] == 204
              and '"Paused"' in st_p[1] and resumed[0] == 204 and b - a > 50 and d - c <= 2 and f - e > 50 and late[0] == 400)
        check("api-boot-pause-resume", ok, f"steps={steps} running={running} vcpu ticks (100/s): running +{b-a}, paused +{d-c}, "
                                           f"resumed +{f-e}; pause={paused} state={st_p} resume={resumed} late-boot-source={late}")
        # GET / latency while the guest runs, one keep-alive connection
        s = socket.socket(socket.AF_UNIX); s.connect(sock); req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"; lat = []
        for i in range(1020):
            t = time.perf_counter_ns(); s.sendall(req); s.recv(4096); lat.append((time.perf_counter_ns() - t) / 1000)
        s.close(); lat = sorted(lat[20:])
        measure("GET / keep-alive latency while a vCPU spins (median of 1000)", round(statistics.median(lat), 1), "us",
                f"p99 {lat[int(len(lat) * .99)]:.1f} us (python client)")
    finally:
        p.kill(); p.wait()


def rss_breakdown(pid, guest_mib):
    """RSS of the process minus the guest-memory mapping(s) (anonymous mappings of at least the guest size)."""
    total, guest = 0, 0
    cur_size = 0
    for l in open(f"/proc/{pid}/smaps"):
        m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", l)
        if m: cur_size = int(m.group(2), 16) - int(m.group(1), 16); continue
        if l.startswith("Rss:"):
            kb = int(l.split()[1]); total += kb
            if cur_size >= guest_mib * 1024 * 1024 // 2: guest += kb
    return total / 1024, guest / 1024


PVM = os.path.isdir("/sys/module/kvm_pvm")


# The guest's eth0 on tap0, for flint configs; QEMU gets the same MAC and tap in QEMU_NET.
TAP0 = ', "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:AC:10:00:02"}]'
QEMU_NET = ["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no", "-device", "virtio-net-device,netdev=n0,mac=06:00:AC:10:00:02"]
QEMU_PVM_CMDLINE = " noxsave clearcpuid=151,308"  # what flint's kvm_pvm template adds for itself


def qemu_vm(B, kernel, append, devices, accel="kvm", mem=128):
    """QEMU microvm with one vCPU and 128 MiB, the serial console on stdout. Under KVM on a kvm_pvm host it gets the
    CPU flags flint's template uses (the caller adds QEMU_PVM_CMDLINE to a Linux cmdline)."""
    cpu = ["-cpu", "host,-arch-capabilities,-cx16,-kvm-steal-time" if PVM else "host"] if accel == "kvm" else []
    return [f"{B}/qemu/run-qemu", "-M", "microvm,x-option-roms=off,rtc=off,acpi=off", "-accel", accel, *cpu, "-m", str(mem),
            "-smp", "1", "-nodefaults", "-no-reboot", "-display", "none", "-monitor", "none", "-kernel", kernel,
            "-append", append, "-global", "virtio-mmio.force-legacy=false", *devices, "-serial", "stdio"]


def qemu_argv(B, args, disk):
    # Same guest, same cmdline as flint's (flint adds the kvm_pvm flags itself; QEMU gets them here), same devices.
    return qemu_vm(B, f"{B}/vmlinux", args + (QEMU_PVM_CMDLINE if PVM else "") + " root=/dev/vda rw",
                   ["-drive", f"file={disk},if=none,id=d,format=raw", "-device", "virtio-blk-device,drive=d"])


def real_kernel(B):
    """Four real-kernel runs side by side (one vCPU each, 16 host cores): flint to init, QEMU to init, flint's RSS
    after boot, and (real_kernel_net) ip= autoconfig + ping."""
    args = "console=ttyS0 reboot=k panic=1 pci=off"
    milestone = "Run /sbin/init as init process" if PVM else "FLINT_GUEST_INIT_OK"
    res = {}

    def flint_boot():
        sh(f"cp --sparse=always {B}/rootfs.ext4 {W}/rk1.ext4")
        c = cfg(f"{W}/rk.json", f"{B}/vmlinux", args, [drive("rootfs", f"{W}/rk1.ext4", root=True)], mem=128)
        res["flint"] = run([f"{B}/flint", "--no-api", "--boot-timer", "--config-file", c], 120,
                           marks=(milestone, "VFS: Mounted root"), stop_at=milestone if PVM else None)

    def qemu_boot():
        if not os.path.exists(f"{B}/qemu/run-qemu"): return
        sh(f"cp --sparse=always {B}/rootfs.ext4 {W}/rk2.ext4")
        res["qemu"] = run(qemu_argv(B, args, f"{W}/rk2.ext4"), 120, marks=(milestone, "VFS: Mounted root"), stop_at=milestone if PVM else None)

    def flint_rss():
        # panic=0: on kvm_pvm init faults and the kernel panics; without a reboot the VM stays up to be measured.
        sh(f"cp --sparse=always {B}/rootfs.ext4 {W}/rk3.ext4")
        c = cfg(f"{W}/rss.json", f"{B}/vmlinux", "console=ttyS0 reboot=k panic=0 pci=off flint_shell",
                [drive("rootfs", f"{W}/rk3.ext4", root=True)], mem=128)
        p = subprocess.Popen([f"{B}/flint", "--no-api", "--config-file", c], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.PIPE)
        t0 = time.monotonic(); seen = False
        try:
            for raw in p.stdout:
                if milestone.encode() in raw: seen = True; break
                if time.monotonic() - t0 > 110: break
            if seen:
                time.sleep(2.0)
                res["rss"] = rss_breakdown(p.pid, 128)
        finally:
            p.kill(); p.wait()

    def api_boot():
        # Firecracker's getting-started sequence over the API socket, with the real kernel.
        sh(f"cp --sparse=always {B}/rootfs.ext4 {W}/rk4.ext4")
        sock = f"{W}/rk-api.sock"
        p = subprocess.Popen([f"{B}/flint", "--api-sock", sock, "--id", "rkapi"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines = []
        seen = threading.Event()

        def pump():
            for raw in p.stdout:
                lines.append(raw.decode(errors="replace"))
                if milestone.encode() in raw: seen.set()
        threading.Thread(target=pump, daemon=True).start()
        try:
            t0 = time.monotonic()
            while not os.path.exists(sock) and time.monotonic() - t0 < 10: time.sleep(0.01)
            st = [http(sock, "PUT", "/boot-source", json.dumps({"kernel_image_path": f"{B}/vmlinux", "boot_args": args})),
                  http(sock, "PUT", "/drives/rootfs", json.dumps(drive("rootfs", f"{W}/rk4.ext4", root=True))),
                  http(sock, "PUT", "/machine-config", '{"vcpu_count": 1, "mem_size_mib": 128}'),
                  http(sock, "PUT", "/actions", '{"action_type": "InstanceStart"}')]
            ok = [c for c, _ in st] == [204, 204, 204, 204] and seen.wait(110)
            cfgback = http(sock, "GET", "/vm/config")
            check("api-getting-started-real-kernel", ok and '"rootfs"' in cfgback[1],
                  f"api={st} milestone_seen={seen.is_set()} vm/config={cfgback[0]}\n" + "".join(lines)[-800:])
        finally:
            p.kill(); p.wait()

    threads = [threading.Thread(target=f) for f in (flint_boot, qemu_boot, flint_rss, api_boot, lambda: real_kernel_net(B),
                                                    lambda: real_kernel_net(B, "qemu"))]
    for t in threads: t.start()
    for t in threads: t.join()
    f = res.get("flint")
    ok = f is not None and milestone in f.marks and "virtio_blk virtio0: [vda]" in f.out and "VFS: Mounted root" in f.out
    if not PVM: ok = ok and f.rc == 0 and "Guest-boot-time" in f.out
    check("real-kernel-" + ("run-init" if PVM else "init-ok"), ok, f"milestone '{milestone}' marks={f.marks if f else None} rc={f.rc if f else None}\n"
          + ((f.out[-1500:] + f.err[-800:]) if f else ""))
    if f and milestone in f.marks:
        measure(f"real kernel: exec -> '{milestone}', flint", round(f.marks[milestone] * 1000), "ms", f"VFS mounted at {f.marks.get('VFS: Mounted root', 0)*1000:.0f} ms")
    q = res.get("qemu")
    if q is not None:
        if milestone in q.marks:
            measure(f"real kernel: exec -> '{milestone}', QEMU microvm (KVM, same kernel/rootfs/cmdline)", round(q.marks[milestone] * 1000), "ms",
                    f"VFS mounted at {q.marks.get('VFS: Mounted root', 0)*1000:.0f} ms")
            if f and milestone in f.marks:
                measure("real kernel boot-to-init ratio flint/QEMU", round(f.marks[milestone] / q.marks[milestone], 3), "x", "run concurrently, 1 vCPU each")
        else:
            log("qemu real-kernel run did not reach the milestone", q.rc, q.all[-2500:])
    if "rss" in res:
        total, guest = res["rss"]
        measure("VMM RSS outside guest memory after the kernel booted", round(total - guest, 2), "MiB",
                f"total RSS {total:.1f} MiB, guest memory resident {guest:.1f} MiB")


SENDER = """
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
d = b"x" * 1472
stop = sys.argv[1]
i = 0
while True:
    try:
        s.sendto(d, ("172.16.0.2", 9))
    except OSError:
        pass
    i += 1
    if i % 256 == 0 and os.path.exists(stop):
        break
"""


def tput_once(B, vmm, ns, direction, n):
    """One test-guest throughput run over tap0 in ns: (bytes, seconds), timed on the host between the guest's
    start/ready and done lines, or None."""
    args = f"tg.tests=net tg.net.tput.{direction}={n} tg.boottimer=0 tg.timeout=10000"
    if vmm == "flint":
        c = cfg(f"{W}/tput.json", f"{B}/testguest.elf", args, mem=128, extra=TAP0)
        argv = ["ip", "netns", "exec", ns, f"{B}/flint", "--no-api", "--config-file", c]
    else:
        argv = ["ip", "netns", "exec", ns, *qemu_vm(B, f"{B}/testguest.elf", args, QEMU_NET, os.environ.get("QEMU_ACCEL", "kvm"))]
    start = "net tput tx start" if direction == "tx" else "net tput rx ready"
    done = f"net tput {direction} done"
    stop = f"{W}/tput-stop"
    if os.path.exists(stop): os.unlink(stop)
    sender = []

    def on_line(l):
        if direction == "rx" and start in l and not sender:
            sender.append(subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", SENDER, stop]))
        if done in l:
            open(stop, "w").close()
    try:
        r = run(argv, 180, marks=(start, done), on_line=on_line)
    finally:
        open(stop, "w").close()
        for p in sender:
            try: p.wait(10)
            except subprocess.TimeoutExpired: p.kill()
    m = re.search(rf"{done} frames=(\d+) bytes=(\d+) us=(\d+)", r.out)
    ok = f"PASS net-tput-{direction}" in r.out and m and start in r.marks and done in r.marks
    if not ok:
        log(f"tput {vmm} {direction} failed rc={r.rc}", r.all[-1500:])
        return None
    return int(m.group(2)), r.marks[done] - r.marks[start]


def net_tput(B):
    """Test-guest throughput guest->host (tx) and host->guest (rx) over a tap: flint next to QEMU, same guest."""
    if not summary["env"]["tools"]["ip"] or not summary["env"]["tun"]:
        check("net-throughput", False, "skipped: needs ip and /dev/net/tun"); return
    rc, o = netns_tap("flinttput")
    if rc != 0: check("net-throughput", False, "netns/tap setup failed: " + o); return
    n = int(os.environ.get("TPUT_FRAMES", "20000"))
    vmms = [v for v in ("flint", "qemu") if (v == "flint" and summary["env"]["kvm_usable"]) or (v == "qemu" and os.path.exists(f"{B}/qemu/run-qemu"))]
    res = {}
    for direction in ("tx", "rx"):
        for vmm in vmms:
            r = tput_once(B, vmm, "flinttput", direction, n)
            if r:
                b, secs = r
                res[(vmm, direction)] = b / secs
                what = "guest->host" if direction == "tx" else "host->guest"
                measure(f"net throughput {what}, {vmm} (test guest, {n} x 1514-byte frames)", round(b / secs * 8 / 1e6, 1), "Mbit/s",
                        f"{n / secs:.0f} frames/s over {secs:.2f} s")
        if ("flint", direction) in res and ("qemu", direction) in res:
            measure(f"net throughput {direction} ratio flint/QEMU", round(res[("flint", direction)] / res[("qemu", direction)], 3), "x")
    check("net-throughput", all((v, d) in res for v in vmms for d in ("tx", "rx")), str({f"{k[0]}-{k[1]}": round(v) for k, v in res.items()}))


def real_kernel_net(B, vmm="flint"):
    """The real kernel configures eth0 with ip= over a tap in its own namespace; the host pings it 20 times.
    vmm="qemu": the same kernel and cmdline under QEMU microvm, for the side-by-side RTT."""
    name = "real-kernel-ip-config-ping" + ("" if vmm == "flint" else "-qemu")
    if not summary["env"]["tools"]["ip"] or not summary["env"]["tun"] or not summary["env"]["tools"]["ping"]:
        check(name, False, "skipped: needs ip, ping and /dev/net/tun"); return
    if vmm == "qemu" and not os.path.exists(f"{B}/qemu/run-qemu"): return
    ns = "flintrk" if vmm == "flint" else "qemurk"
    rc, o = netns_tap(ns)
    if rc != 0: check(name, False, "netns/tap setup failed: " + o); return
    args = "console=ttyS0 reboot=k panic=1 root=/dev/vdz rootwait ip=172.16.0.2::172.16.0.1:255.255.255.252::eth0:off"
    if vmm == "flint":
        c = cfg(f"{W}/rkn.json", f"{B}/vmlinux", args, mem=128, extra=TAP0)
        argv = [f"{B}/flint", "--no-api", "--config-file", c]
    else:
        argv = qemu_vm(B, f"{B}/vmlinux", args + (QEMU_PVM_CMDLINE if PVM else ""), QEMU_NET)
    p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        t0 = time.monotonic(); up = False
        for raw in p.stdout:
            if b"IP-Config: Complete" in raw: up = True; break
            if time.monotonic() - t0 > 100: break
        rc, o = sh(f"ip netns exec {ns} ping -c 20 -i 0.2 -W 2 172.16.0.2", 30) if up else (1, "no IP-Config")
        m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)", o)
        check(name, up and rc == 0, o[-400:])
        if m: measure(f"ping RTT host->guest kernel through {vmm} virtio-net (avg of 20)", float(m.group(2)), "ms", f"min {m.group(1)} max {m.group(3)}")
    finally:
        p.kill(); p.wait()


TPUT_INIT = """#!/bin/busybox sh
# /init of the TCP throughput initramfs: the real kernel's own TCP stack moves the bytes; busybox nc and dd drive it.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t devtmpfs dev /dev 2>/dev/null
mode=rx; mib=32
for a in $(cat /proc/cmdline); do case $a in flint_tput=*) mode=${a#*=};; flint_tput_mib=*) mib=${a#*=};; esac; done
echo "TPUT_READY $mode"
if [ "$mode" = rx ]; then nc -l -p 5001 < /dev/null > /dev/null
else dd if=/dev/zero bs=65536 count=$((mib * 16)) 2>/dev/null | nc 172.16.0.1 5001; fi
echo "TPUT_DONE $mode"
reboot -f
"""

# The host end of real_kernel_tcp, run inside the netns: rx = connect to the guest and send, tx = accept and read.
TCP_PEER = """
import socket, sys, time
mode, n = sys.argv[1], int(sys.argv[2]) << 20
if mode == "rx":
    t_end = time.monotonic() + 60
    while True:
        try:
            s = socket.create_connection(("172.16.0.2", 5001), timeout=5); break
        except OSError:
            if time.monotonic() > t_end: raise
            time.sleep(0.1)
    s.settimeout(300)
    t0 = time.monotonic(); buf = b"\\0" * 65536; sent = 0
    while sent < n:
        sent += s.send(buf[: min(65536, n - sent)])
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536): pass   # the guest's nc closes once it has read everything
    print(sent, time.monotonic() - t0)
else:
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("172.16.0.1", 5001)); l.listen(1); l.settimeout(120)
    print("LISTENING", flush=True)
    c, _ = l.accept(); c.settimeout(300)
    got = 0; t0 = None
    while True:
        d = c.recv(1 << 18)
        if not d: break
        if t0 is None: t0 = time.monotonic()
        got += len(d)
    print(got, time.monotonic() - t0)
"""


def newc(entries):
    """A newc cpio archive (the initramfs format) from (name, mode, data, rdev_major, rdev_minor) tuples."""
    out = bytearray()
    for i, (name, mode, data, ma, mi) in enumerate(entries + [("TRAILER!!!", 0, b"", 0, 0)]):
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (i + 1, mode, 0, 0, 1, 0, len(data), 0, 0, ma, mi, len(nb), 0))
        out += hdr.encode() + nb
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def tput_initramfs(B):
    path = f"{W}/tput-initrd.cpio"
    if not os.path.exists(path):
        bb = open(f"{B}/busybox", "rb").read()
        open(path, "wb").write(newc([("dev", 0o40755, b"", 0, 0), ("dev/console", 0o20600, b"", 5, 1), ("dev/null", 0o20666, b"", 1, 3), ("proc", 0o40755, b"", 0, 0),
                                     ("bin", 0o40755, b"", 0, 0), ("bin/busybox", 0o100755, bb, 0, 0),
                                     ("init", 0o100755, TPUT_INIT.encode(), 0, 0)]))
    return path


def tcp_once(B, vmm, ns, direction, mib):
    """The real kernel with ip= and the throughput initramfs; TCP between the host (in ns) and the guest's nc.
    (bytes, seconds) measured by the host end, or None."""
    args = (f"console=ttyS0 reboot=k panic=1 rdinit=/init flint_tput={direction} flint_tput_mib={mib} "
            "ip=172.16.0.2::172.16.0.1:255.255.255.252::eth0:off " + os.environ.get("TCP_EXTRA_ARGS", ""))
    initrd = tput_initramfs(B)
    if vmm == "flint":
        c = cfg(f"{W}/tcp.json", f"{B}/vmlinux", args, mem=256, extra=TAP0)
        text = open(c).read()
        open(c, "w").write(text.replace('"boot_args"', f'"initrd_path": {json.dumps(initrd)}, "boot_args"'))
        argv = [f"{B}/flint", "--no-api", "--config-file", c]
    else:
        argv = qemu_vm(B, f"{B}/vmlinux", args + (QEMU_PVM_CMDLINE if PVM else ""), QEMU_NET + ["-initrd", initrd], os.environ.get("QEMU_ACCEL", "kvm"), mem=256)
    peer = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", TCP_PEER, direction, str(mib)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) if direction == "tx" else None
    if peer: peer.stdout.readline()  # LISTENING
    started = []

    def on_line(l):
        if direction == "rx" and "TPUT_READY" in l and not started:
            started.append(subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", TCP_PEER, direction, str(mib)],
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    # stop_at: QEMU microvm does not always exit on the guest's reboot; the measurement is over at TPUT_DONE anyway.
    r = run(["ip", "netns", "exec", ns, *argv], 150, marks=("TPUT_READY", "TPUT_DONE"), on_line=on_line, stop_at="TPUT_DONE")
    p = peer or (started[0] if started else None)
    if p is None:
        log(f"tcp {vmm} {direction}: guest never got ready rc={r.rc}", r.all[-1500:]); return None
    try:
        o, e = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill(); o, e = p.communicate()
    m = re.match(r"(\d+) ([\d.]+)", o.strip())
    if not m or int(m.group(1)) != mib << 20 or "TPUT_DONE" not in r.marks:
        log(f"tcp {vmm} {direction} failed rc={r.rc} peer={o.strip()} {e.strip()[-500:]}", r.all[-1500:]); return None
    return int(m.group(1)), float(m.group(2))


def real_kernel_tcp(B):
    """TCP throughput both ways between the host and the real kernel (busybox nc in an initramfs): flint next to
    QEMU microvm, same kernel, initramfs and cmdline, one after the other."""
    name = "real-kernel-tcp-throughput"
    if not summary["env"]["tools"]["ip"] or not summary["env"]["tun"] or not os.path.exists(f"{B}/busybox"):
        check(name, False, "skipped: needs ip, /dev/net/tun and the bundle's busybox"); return
    rc, o = netns_tap("flinttcp")
    if rc != 0: check(name, False, "netns/tap setup failed: " + o); return
    mib = int(os.environ.get("TCP_MIB", "32"))
    repeat = int(os.environ.get("TCP_REPEAT", "3"))
    dirs = os.environ.get("TCP_DIRS", "rx,tx").split(",")
    vmms = ["flint"] + (["qemu"] if os.path.exists(f"{B}/qemu/run-qemu") else [])
    vmms = [v for v in vmms if v in os.environ.get("TCP_VMMS", "flint,qemu").split(",")]
    res, fails = {}, {}
    for direction in dirs:
        for i in range(repeat):
            for vmm in vmms:  # alternating, so a slow spell of the host hits both
                r = tcp_once(B, vmm, "flinttcp", direction, mib)
                log(f"tcp {vmm} {direction} run {i + 1}/{repeat}: " + (f"{r[0] * 8 / r[1] / 1e6:.1f} Mbit/s" if r else "FAILED"))
                if r: res.setdefault((vmm, direction), []).append(r[0] / r[1])
                else: fails[(vmm, direction)] = fails.get((vmm, direction), 0) + 1
        for vmm in vmms:
            runs = res.get((vmm, direction), [])
            if runs:
                what = "host->guest" if direction == "rx" else "guest->host"
                measure(f"TCP throughput {what}, {vmm} (real kernel, busybox nc, {mib} MiB, median of {len(runs)})",
                        round(statistics.median(runs) * 8 / 1e6, 1), "Mbit/s", "runs: " + ", ".join(f"{x * 8 / 1e6:.0f}" for x in runs))
        if res.get(("flint", direction)) and res.get(("qemu", direction)):
            measure(f"TCP throughput {direction} ratio flint/QEMU (medians)",
                    round(statistics.median(res[("flint", direction)]) / statistics.median(res[("qemu", direction)]), 3), "x")
    check(name, not fails and all((v, d) in res for v in vmms for d in dirs),
          f"failed runs: {fails}; " + str({f"{k[0]}-{k[1]}": [round(x) for x in v] for k, v in res.items()}))


def jailed_boot(B):
    base = f"{W}/jail"; os.makedirs(base, exist_ok=True)
    r = subprocess.run([f"{B}/flint-jailer", "--id", "devjail", "--exec-file", f"{B}/flint", "--uid", "1234", "--gid", "1234",
                        "--chroot-base-dir", base, "--daemonize", "--", "--api-sock", "/run/flint.socket"], capture_output=True, text=True, timeout=30)
    root = f"{base}/flint/devjail/root"
    sock = f"{root}/run/flint.socket"
    t0 = time.monotonic()
    while not os.path.exists(sock) and time.monotonic() - t0 < 10: time.sleep(0.01)
    if r.returncode != 0 or not os.path.exists(sock):
        check("jailed-boot", False, f"jailer rc={r.returncode} {r.stderr[-800:]}"); return
    pid = int(open(f"{root}/flint.pid").read().strip())
    try:
        sh(f"cp {B}/testguest.elf {root}/guest.elf && {B}/mkdisk {root}/disk.img 64 && chown 1234:1234 {root}/guest.elf {root}/disk.img")
        st = [http(sock, "PUT", "/boot-source", '{"kernel_image_path": "/guest.elf", "boot_args": "tg.tests=blk"}'),
              http(sock, "PUT", "/drives/data", '{"drive_id": "data", "path_on_host": "/disk.img", "is_root_device": false}'),
              http(sock, "PUT", "/actions", '{"action_type": "InstanceStart"}')]
        t0 = time.monotonic()
        while st[2][0] == 204 and os.path.exists(f"/proc/{pid}") and time.monotonic() - t0 < 60: time.sleep(0.05)
        gone = not os.path.exists(f"/proc/{pid}")
        sh(f"{B}/mkdisk {W}/expect-j.img 64 3")
        same = sh(f"cmp -s {root}/disk.img {W}/expect-j.img")[0] == 0
        check("jailed-boot", [s for s, _ in st] == [204, 204, 204] and gone and same,
              f"api={st} vm_finished={gone} guest_write_on_disk={same}")
    finally:
        try: os.kill(pid, signal.SIGKILL)
        except OSError: pass


def main():
    bundle = sys.argv[1] if len(sys.argv) > 1 else ".devcarry/bundle.tar.xz"
    usable = environment()
    if not usable and os.environ.get("FORCE") != "1":
        log("NO-KVM: this machine has no usable /dev/kvm; nothing else to run"); save(); return
    B = f"{W}/b"
    t = time.monotonic()
    with tarfile.open(bundle) as tf: tf.extractall(B)
    log(f"bundle unpacked in {time.monotonic() - t:.1f} s")
    tools = f"{B}/tools"
    if not (summary["env"]["tools"]["ip"] and summary["env"]["tools"]["ping"]) and os.path.isdir(tools):
        os.environ["PATH"] = tools + ":" + os.environ["PATH"]
        summary["env"]["tools"].update(ip=True, ping=True, carried=True)
    for f in (tg_blk, tg_smp, exec_to_first_instruction, cpu_template, huge_pages, rng_balloon, vsock, api_boot_pause_resume, jailed_boot,
              net_mmds, net_tput, real_kernel, real_kernel_tcp, pio_rate):
        only = os.environ.get("ONLY")
        if only and f.__name__ not in only.split(","): continue
        t = time.monotonic()
        try:
            f(B)
        except Exception as x:  # one broken check must not hide the others
            import traceback
            check(f.__name__, False, "exception: " + traceback.format_exc()[-1500:])
        log(f"-- {f.__name__} took {time.monotonic() - t:.1f} s")
        save()
    passed = sum(1 for c in summary["checks"].values() if c["ok"])
    log(f"SUMMARY {passed} passed, {len(summary['checks']) - passed} failed")
    save()


if __name__ == "__main__":
    main()
