#!/usr/bin/env python3
"""Summarise an `strace -f -o TRACE helper work N none` run: the syscalls each role thread (and any thread it
created) made after its (allow-all) filter went on. Usage: syscalls-by-role.py TRACE HELPER_STDOUT"""
import re, sys, collections

trace, out = sys.argv[1], sys.argv[2]
roles = {}
for line in open(out):
    m = re.match(r"ROLE (\S+) (\d+)", line)
    if m and m.group(1) in ("vcpu", "api", "vmm"):
        roles[int(m.group(2))] = m.group(1)

owner = {}          # tid -> role, once the filter is on
calls = collections.defaultdict(collections.Counter)
samples = collections.defaultdict(dict)
pending = {}
for line in open(trace):
    m = re.match(r"(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*)", line)
    if not m:
        continue
    tid = int(m.group(1))
    name = m.group(2) or m.group(3)
    rest = m.group(4)
    if m.group(3) and tid in roles and tid not in owner and name == "seccomp":
        owner[tid] = roles[tid]
        continue
    if tid not in owner:
        continue
    role = owner[tid]
    if m.group(3):  # a call starts (possibly unfinished)
        calls[role][name] += 1
        samples[role].setdefault(name, line.strip()[:160])
    if name in ("clone", "clone3") and "unfinished" not in line:
        r = re.search(r"= (\d+)", line)
        if r:
            owner[int(r.group(1))] = role + "+child"

for role in sorted(calls):
    print(f"== {role}: {len(calls[role])} syscalls")
    for name, n in sorted(calls[role].items()):
        print(f"  {name:24} {n:7}   {samples[role][name]}")
