#!/usr/bin/env python3
"""Rename the older PascalCase test methods to snake-case sentences (issue 16, docs/development.md).

    python3 scripts/dev/rename-legacy-tests.py            # rewrite the tree
    python3 scripts/dev/rename-legacy-tests.py --dry-run  # print old -> new, change nothing

Deterministic and idempotent: it reads every test method declared under [Fact]/[Theory]/[SkippableFact]/
[SkippableTheory] in tests/**/*.cs (the same reading as CodeRulesTests.TestMethodNames), and renames the ones that are
not yet a snake-case sentence (fewer than two underscores). A name is split into its words (PipelinedRequestsInOneWrite
-> Pipelined requests in one write); a word keeps its capitals when it is an acronym or an identifier in WORDS below
(GetMmdsReturnsJson -> Get_MMDS_returns_JSON); names the split cannot make into a sentence of three words or more, or
reads badly, are spelled out in WHOLE. A second run finds nothing to rename and changes nothing.

What it rewrites: the declaration line of each renamed test (only the method name on that line), `nameof(Name)` and
`cref="Name"` in its file, `nameof(Class.Name)` and `Class.Name` (a comment naming the test) in tests/ and src/, and `Class.Name` / `Class+Name` / `~Name` test filters in docs/, scripts/,
tests/ (*.md, *.txt, *.sh, *.py, *.cs) and .ci/. Test bodies, assertions and other members are not touched.
Run it again after merging a branch that adds PascalCase tests; a name it cannot make into a sentence is reported
(exit 1) and belongs in WHOLE.
"""
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TESTS = os.path.join(ROOT, "tests")

TEST_ATTRIBUTE = re.compile(r"^\s*\[(Fact|Theory|SkippableFact|SkippableTheory)\b")
METHOD_NAME = re.compile(r"\b(\w+)\s*\(")

# Words spelled as written here wherever they occur as one word of a name (matched case-insensitively on the word the
# split gives). Acronyms stay capitals; identifiers (a field, a status, a flag) keep their own spelling.
WORDS = {w.lower(): w for w in [
    "API", "MMDS", "IMDS", "JSON", "HTTP", "HTTPS", "PCI", "VMM", "VM", "KVM", "MAC", "ARP", "MSS", "TTL", "RST", "SYN",
    "FIN", "RFC", "PBA", "BAR", "BARs", "RAM", "RSS", "PFN", "PFNs", "CPU", "CPUs", "MSR", "MSRs", "FPU", "PVH", "ELF",
    "FIFO", "TAP", "CID", "CIDs", "MSI", "IRQ", "GSI", "GSIs", "TCP", "UDP", "IP", "IPv4", "MMIO", "DAX", "ACPI", "SIGTERM",
    "URI", "UTF", "OK", "EOF", "GiB", "MiB", "KiB", "TSC", "APIC", "IOAPIC", "PIC", "PIT", "E820", "RW",
    "VMGenID", "VMClock", "DotNet", "IOException", "NextAvail", "FlushMetrics", "Firecrackers", "Firecracker", "Linux",
    "EPOLLOUT", "SIGKILL", "SIGSEGV", "CRC", "GC", "QEMU", "TCG", "vCPU", "vCPUs", "UFFD", "cgroup", "DRIVER_OK", "EVENT_IDX", "GET_ID", "IOERR", "MSI_X", "0xCF8",
    "Netns", "Ioctl", "i64", "zImage", "bzImage", "ELF32", "HTTP_1_0", "RFC_7396", "io_uring", "O_DIRECT",
]}

# Split products joined back before spelling (Msix -> MSI_X, IoErr -> IOERR): tuples of lower-case words.
JOINS = {
    ("msix",): "MSI_X",
    ("io", "err"): "IOERR",
    ("get", "id"): "GET_ID",
    ("event", "idx"): "EVENT_IDX",
    ("driver", "ok"): "DRIVER_OK",
    ("0x", "cf", "8"): "0xCF8",
    ("v", "1"): "V1",
    ("v", "2"): "V2",
    ("crc", "64"): "CRC64",
    ("syn", "ack"): "SYN_ACK",
    ("p", "invoke"): "PInvoke",
    ("event", "fd"): "eventfd",
    ("timer", "fd"): "timerfd",
    ("features", "ok"): "FEATURES_OK",
    ("version", "1"): "VERSION_1",
    ("elf", "32"): "ELF32",
    ("http", "10"): "HTTP_1_0",
    ("rfc", "7396"): "RFC_7396",
    ("i", "64"): "i64",
    ("z", "image"): "zImage",
    ("dot", "net"): "DotNet",
    ("io", "exception"): "IOException",
    ("next", "avail"): "NextAvail",
    ("epoll", "out"): "EPOLLOUT",
    ("micro", "https"): "micro_https",
    ("flush", "metrics"): "FlushMetrics",
    ("fc", "api"): "fc_api",
    ("io", "uring"): "io_uring",
}

# Names whose split alone does not make a sentence of three words, or would read wrongly (HTTP verbs among verbs).
WHOLE = {
    "Defaults": "Defaults_are_Firecrackers",
    "Identity": "Identity_features_and_queue",
    "Available": "The_kernel_offers_io_uring",
    "Rejects": "Bad_arguments_are_rejected",
    "PInvokeOnlyInSysAndKvm": "PInvoke_only_in_Flint_Sys_and_Flint_Kvm",
    "IdRule": "The_id_rule",
    "IdRule_Length": "The_id_rule_bounds_the_length",
    "ParserRoutes": "The_parser_routes_each_request",
    "ErrorPaths": "Error_paths_answer_their_fault_and_change_nothing",
    "LoopingChain": "A_looping_chain",
    "BadType": "A_bad_type",
    "MissingStatus": "A_missing_status",
    "MalformedRequests": "Malformed_requests_are_refused",
    "IdentityRegisters": "The_identity_registers",
    "IndirectDescriptor": "An_indirect_descriptor",
    "Intr_continues": "An_intr_exit_continues",
    "ZImage_rejected": "A_zImage_is_rejected",
    "Elf32_rejected": "An_ELF32_is_rejected",
    "Garbage_rejected": "Garbage_is_rejected",
    "Pvh_registers": "The_PVH_registers",
    "Fpu_defaults": "The_FPU_defaults",
    "Boot_msrs": "The_boot_MSRs",
    "Ioctl_numbers": "The_ioctl_numbers",
    "ResourceLimits_Applied": "Resource_limits_are_applied",
    "Extended_topology": "The_extended_topology",
    "ExpectContinue": "Expect_100_continue",
    "ConnectionCloseAndHttp10": "Connection_close_and_HTTP_1_0",
    "MmdsPutPatchGetAndConfig": "MMDS_PUT_PATCH_GET_and_config",
    "PatchMachineConfigKeepsOtherFields": "PATCH_machine_config_keeps_other_fields",
    "V1GetTextAndJson": "V1_GET_text_and_JSON",
    "PutGetAndImdsRendering": "PUT_GET_and_IMDS_rendering",
    "RoutingThePolledGetsAllocatesNothing": "Routing_the_polled_GETs_allocates_nothing",
    "ServingKeepAliveGetsAllocatesNothingOnTheApiThread": "Serving_keep_alive_GETs_allocates_nothing_on_the_API_thread",
    "AThousandIdleConnectionsDoNotLockOutGet": "A_thousand_idle_connections_do_not_lock_out_GET",
    "ParsingPutMachineConfigAllocatesOnlyTheAction": "Parsing_PUT_machine_config_allocates_only_the_action",
    "MissingBackingFilesAreRefusedAtPut": "Missing_backing_files_are_refused_at_PUT",
}


def snake(name):
    """The snake-case sentence for a PascalCase (or Clause_OtherClause) test name."""
    if name in WHOLE:
        return WHOLE[name]
    words = []
    for part in name.split("_"):
        # Words: a capitalised run, an upper-case run before another word (IOException -> I O Exception is joined
        # back by JOINS), a number, or a 0x prefix.
        words += re.findall(r"0x|[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+", part)
    low = [w.lower() for w in words]
    out = []
    i = 0
    while i < len(low):
        for n in (3, 2, 1):
            key = tuple(low[i:i + n])
            if len(key) == n and key in JOINS:
                out.append(JOINS[key])
                i += n
                break
        else:
            out.append(WORDS.get(low[i], low[i]))
            i += 1
    first = out[0]
    out[0] = first[0].upper() + first[1:] if first[0].islower() and first not in ("zImage", "i64", "micro_https", "io_uring", "vCPU", "vCPUs", "eventfd", "timerfd") else first
    return "_".join(out)


def is_sentence(name):
    return name.count("_") >= 2


def test_methods(path):
    """(line index, name) of each test method declared in the file, as CodeRulesTests reads them."""
    pending = False
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if TEST_ATTRIBUTE.match(line):
            pending = True
            continue
        if not pending:
            continue
        t = line.lstrip()
        if t.startswith("[") or t.startswith("//") or not t.strip():
            continue
        m = METHOD_NAME.search(t)
        if m:
            pending = False
            yield i, m.group(1)


def cs_files(top):
    for d, dirs, files in os.walk(top):
        dirs[:] = sorted(x for x in dirs if x not in ("bin", "obj", "out"))
        for f in sorted(files):
            if f.endswith(".cs"):
                yield os.path.join(d, f)


def text_files():
    for top in ("docs", "scripts", "tests", ".ci", "bench"):
        for d, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = sorted(x for x in dirs if x not in ("bin", "obj", "out", "node_modules"))
            for f in sorted(files):
                if f.endswith((".md", ".txt", ".sh", ".py", ".yml", ".yaml")) and f != "rename-legacy-tests.py":
                    yield os.path.join(d, f)
    yield os.path.join(ROOT, "README.md")


def rewrite(path, fn, dry):
    with open(path, encoding="utf-8") as f:
        old = f.read()
    new = fn(old)
    if new != old and not dry:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
    return new != old


def main():
    dry = "--dry-run" in sys.argv
    renames = {}  # (file, old) -> new
    by_class = {}  # class name -> {old: new}
    bad = []
    for path in cs_files(TESTS):
        cls = os.path.splitext(os.path.basename(path))[0].split(".")[0]
        for _, name in test_methods(path):
            if is_sentence(name):
                continue
            new = snake(name)
            if not is_sentence(new) or not re.fullmatch(r"\w+", new):
                bad.append(f"{os.path.relpath(path, ROOT)}: {name} -> {new}")
                continue
            taken = {n for _, n in test_methods(path)} | {v for (p, _), v in renames.items() if p == path}
            if new in taken:
                bad.append(f"{os.path.relpath(path, ROOT)}: {name} -> {new} (a test of that name exists)")
                continue
            renames[(path, name)] = new
            by_class.setdefault(cls, {})[name] = new
    if bad:
        print("names the split cannot make into a sentence (add them to WHOLE):\n  " + "\n  ".join(bad), file=sys.stderr)
        return 1

    changed = set()
    # 1. The declarations: only the method name on its own declaration line.
    per_file = {}
    for (path, name), new in renames.items():
        per_file.setdefault(path, {})[name] = new
    for path, names in per_file.items():
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        for i, name in list(test_methods(path)):
            if name in names:
                lines[i] = re.sub(r"\b" + re.escape(name) + r"(\s*\()", names[name] + r"\1", lines[i], count=1)
        text = "\n".join(lines)
        # nameof(Name) and <see cref="Name"/> in the declaring file (a test referring to another of its class).
        for name, new in names.items():
            text = re.sub(r"\bnameof\(\s*" + re.escape(name) + r"\s*\)", f"nameof({new})", text)
            text = re.sub(r'\bcref="' + re.escape(name) + r'"', f'cref="{new}"', text)
        if not dry:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        changed.add(path)
        for name, new in sorted(names.items()):
            print(f"{os.path.relpath(path, ROOT)}: {name} -> {new}")

    # 2. nameof(Class.Name) anywhere in tests/ and src/.
    def qualified_nameof(text):
        for cls, names in by_class.items():
            for name, new in names.items():
                text = re.sub(r"\bnameof\(\s*((?:\w+\.)*" + re.escape(cls) + r")\.\s*" + re.escape(name) + r"\s*\)",
                              lambda m: f"nameof({m.group(1)}.{new})", text)
        return text

    def qualified(text):
        text = qualified_nameof(text)
        for cls, names in by_class.items():
            for name, new in names.items():
                text = re.sub(r"\b" + re.escape(cls) + r"\." + re.escape(name) + r"\b", f"{cls}.{new}", text)
        return text

    for top in (TESTS, os.path.join(ROOT, "src")):
        for path in cs_files(top):
            if rewrite(path, qualified, dry):
                changed.add(path)

    # 3. Filters and mentions in docs and scripts: Class.Name, Class+Name, ~Name (a test filter).
    def mentions(text):
        for cls, names in by_class.items():
            for name, new in names.items():
                text = re.sub(r"\b" + re.escape(cls) + r"([.+])" + re.escape(name) + r"\b", cls + r"\1" + new, text)
        unique = {}
        for cls, names in by_class.items():
            for name, new in names.items():
                unique.setdefault(name, set()).add(new)
        for name, news in unique.items():
            if len(news) == 1:
                text = re.sub(r"~" + re.escape(name) + r"\b", "~" + next(iter(news)), text)
        return text

    for path in text_files():
        if os.path.exists(path) and rewrite(path, mentions, dry):
            changed.add(path)
            print(f"{os.path.relpath(path, ROOT)}: mentions renamed")

    print(f"{len(renames)} tests renamed in {len(per_file)} files; {len(changed)} files changed" +
          (" (dry run)" if dry else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
