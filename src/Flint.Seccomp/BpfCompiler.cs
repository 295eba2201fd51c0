namespace Flint.Seccomp;

/// <summary>
/// Compiles a <see cref="SeccompFilterSpec"/> to classic BPF for seccomp on x86_64:
/// <code>
///   ld  [arch]; jeq AUDIT_ARCH_X86_64 ? next : kill_process
///   ld  [nr];   jeq nr1 ? block1 : next; jeq nr2 ? block2 : next; ...; ret default_action
///   block_n: rule1 conditions (fail -> rule2); ret filter_action; rule2 ...; ret default_action
/// </code>
/// Syscalls keep the order of their first rule in the JSON (put hot ones first). Each 64-bit compare is split into
/// the high and low 32-bit words of <c>seccomp_data.args[i]</c>. Jumps are symbolic; the assembler lays the program
/// out back to front and, where a conditional jump's 8-bit offset can't reach its target, points it at an inserted
/// <c>ja</c> (32-bit offset) trampoline instead.
/// </summary>
public static class BpfCompiler
{
    /// <summary>Compiles every filter in a JSON document (see <see cref="FilterParser"/>).</summary>
    public static Dictionary<string, SockFilter[]> CompileJson(string json)
        => FilterParser.Parse(json).ToDictionary(kv => kv.Key, kv => Compile(kv.Value, kv.Key), StringComparer.Ordinal);

    public static SockFilter[] Compile(SeccompFilterSpec spec, string name = "filter")
    {
        var a = new Assembler();
        uint def = spec.DefaultAction.ReturnValue, ok = spec.FilterAction.ReturnValue;

        a.Load(Bpf.ArchOffset);
        var archOk = a.NewLabel();
        var badArch = a.NewLabel();
        a.Jump(Bpf.JeqK, Bpf.AUDIT_ARCH_X86_64, archOk, badArch);
        a.Bind(badArch);
        a.Ret(Bpf.SECCOMP_RET_KILL_PROCESS);
        a.Bind(archOk);
        a.Load(Bpf.NrOffset);

        // Group rules by syscall, in order of first appearance.
        var order = new List<int>();
        var bySyscall = new Dictionary<int, List<SeccompRule>>();
        foreach (var r in spec.Rules)
        {
            if (!bySyscall.TryGetValue(r.Number, out var list)) { bySyscall[r.Number] = list = []; order.Add(r.Number); }
            list.Add(r);
        }

        var blocks = new Dictionary<int, Assembler.Label>();
        foreach (int nr in order)
        {
            var block = blocks[nr] = a.NewLabel();
            var next = a.NewLabel();
            a.Jump(Bpf.JeqK, (uint)nr, block, next);
            a.Bind(next);
        }
        a.Ret(def);

        foreach (int nr in order)
        {
            a.Bind(blocks[nr]);
            foreach (var rule in bySyscall[nr])
            {
                if (rule.Conditions.Count == 0) { a.Ret(ok); goto nextSyscall; } // unconditional: later rules can't matter
                var fail = a.NewLabel();
                foreach (var c in rule.Conditions) EmitCondition(a, c, fail);
                a.Ret(ok);
                a.Bind(fail);
            }
            a.Ret(def);
        nextSyscall:;
        }

        var prog = a.Assemble();
        if (prog.Length > Bpf.MaxInstructions)
            throw new SeccompConfigException($"Seccomp filter '{name}' compiles to {prog.Length} BPF instructions; the kernel's limit is {Bpf.MaxInstructions}.");
        return prog;
    }

    /// <summary>Emits a check that falls through when the condition holds and jumps to <paramref name="fail"/> otherwise.</summary>
    private static void EmitCondition(Assembler a, SeccompCondition c, Assembler.Label fail)
    {
        uint lo = (uint)c.Value, hi = (uint)(c.Value >> 32);
        uint mlo = (uint)c.Mask, mhi = (uint)(c.Mask >> 32);
        uint offLo = Bpf.ArgLo(c.Index), offHi = Bpf.ArgHi(c.Index);
        var pass = a.NewLabel();

        if (c.Type == ArgType.Dword)
        {
            a.Load(offLo);
            switch (c.Op)
            {
                case CmpOp.Eq: a.Jump(Bpf.JeqK, lo, pass, fail); break;
                case CmpOp.Ne: a.Jump(Bpf.JeqK, lo, fail, pass); break;
                case CmpOp.Gt: a.Jump(Bpf.JgtK, lo, pass, fail); break;
                case CmpOp.Ge: a.Jump(Bpf.JgeK, lo, pass, fail); break;
                case CmpOp.Lt: a.Jump(Bpf.JgeK, lo, fail, pass); break;
                case CmpOp.Le: a.Jump(Bpf.JgtK, lo, fail, pass); break;
                case CmpOp.MaskedEq: a.And(mlo); a.Jump(Bpf.JeqK, lo, pass, fail); break;
            }
            a.Bind(pass);
            return;
        }

        var checkLo = a.NewLabel();
        a.Load(offHi);
        switch (c.Op)
        {
            case CmpOp.Eq:
                a.Jump(Bpf.JeqK, hi, checkLo, fail);
                a.Bind(checkLo); a.Load(offLo);
                a.Jump(Bpf.JeqK, lo, pass, fail);
                break;
            case CmpOp.Ne:
                a.Jump(Bpf.JeqK, hi, checkLo, pass);
                a.Bind(checkLo); a.Load(offLo);
                a.Jump(Bpf.JeqK, lo, fail, pass);
                break;
            case CmpOp.Gt or CmpOp.Ge:
            {
                var notAbove = a.NewLabel();
                a.Jump(Bpf.JgtK, hi, pass, notAbove);          // hi > v.hi: holds
                a.Bind(notAbove);
                a.Jump(Bpf.JeqK, hi, checkLo, fail);           // hi < v.hi: fails
                a.Bind(checkLo); a.Load(offLo);
                a.Jump(c.Op == CmpOp.Gt ? Bpf.JgtK : Bpf.JgeK, lo, pass, fail);
                break;
            }
            case CmpOp.Lt or CmpOp.Le:
            {
                var notAbove = a.NewLabel();
                a.Jump(Bpf.JgtK, hi, fail, notAbove);          // hi > v.hi: fails
                a.Bind(notAbove);
                a.Jump(Bpf.JeqK, hi, checkLo, pass);           // hi < v.hi: holds
                a.Bind(checkLo); a.Load(offLo);
                if (c.Op == CmpOp.Lt) a.Jump(Bpf.JgeK, lo, fail, pass);
                else a.Jump(Bpf.JgtK, lo, fail, pass);
                break;
            }
            case CmpOp.MaskedEq:
                a.And(mhi);
                a.Jump(Bpf.JeqK, hi, checkLo, fail);
                a.Bind(checkLo); a.Load(offLo); a.And(mlo);
                a.Jump(Bpf.JeqK, lo, pass, fail);
                break;
        }
        a.Bind(pass);
    }

    /// <summary>A forward-only BPF assembler with symbolic labels and automatic far-jump trampolines.</summary>
    internal sealed class Assembler
    {
        internal sealed class Label { public int Item = -1; }

        private readonly record struct Item(SockFilter Insn, Label? True, Label? False, Label? Always);

        private readonly List<Item> _items = [];
        private readonly List<(Label Label, int Item)> _binds = [];

        public Label NewLabel() => new();

        /// <summary>Binds the label to the next instruction emitted.</summary>
        public void Bind(Label l)
        {
            if (l.Item >= 0) throw new InvalidOperationException("label bound twice");
            l.Item = _items.Count;
        }

        public void Load(uint offset) => _items.Add(new(new SockFilter(Bpf.LdAbsW, 0, 0, offset), null, null, null));
        public void And(uint k) => _items.Add(new(new SockFilter(Bpf.AndK, 0, 0, k), null, null, null));
        public void Ret(uint k) => _items.Add(new(new SockFilter(Bpf.RetK, 0, 0, k), null, null, null));
        public void Jump(ushort code, uint k, Label t, Label f) => _items.Add(new(new SockFilter(code, 0, 0, k), t, f, null));
        public void JumpAlways(Label target) => _items.Add(new(new SockFilter(Bpf.Ja, 0, 0, 0), null, null, target));

        /// <summary>Lays the program out from the end, so every target's final position is known when a jump is placed.</summary>
        public SockFilter[] Assemble()
        {
            // rev holds the output reversed; posFromEnd[item] = index in rev of that item's instruction.
            var rev = new List<SockFilter>(_items.Count + 16);
            var posFromEnd = new int[_items.Count + 1];
            posFromEnd[_items.Count] = -1; // a label at the very end would point past the program

            int Target(Label l)
            {
                if (l.Item < 0) throw new InvalidOperationException("jump to an unbound label");
                if (l.Item >= _items.Count) throw new InvalidOperationException("jump past the end of the program");
                return posFromEnd[l.Item];
            }

            for (int i = _items.Count - 1; i >= 0; i--)
            {
                var it = _items[i];
                if (it.Always is not null)
                {
                    rev.Add(it.Insn with { K = (uint)(rev.Count - Target(it.Always) - 1) });
                }
                else if (it.True is not null)
                {
                    int t = Target(it.True!), f = Target(it.False!);
                    // Offsets from this instruction (to be placed at rev.Count); trampolines go just after it.
                    if (rev.Count - t - 1 > 255) { rev.Add(new SockFilter(Bpf.Ja, 0, 0, (uint)(rev.Count - t - 1))); t = rev.Count - 1; }
                    if (rev.Count - f - 1 > 255) { rev.Add(new SockFilter(Bpf.Ja, 0, 0, (uint)(rev.Count - f - 1))); f = rev.Count - 1; }
                    int jt = rev.Count - t - 1, jf = rev.Count - f - 1;
                    if (jt > 255 || jf > 255) throw new InvalidOperationException("far jump could not be resolved");
                    rev.Add(it.Insn with { Jt = (byte)jt, Jf = (byte)jf });
                }
                else rev.Add(it.Insn);
                posFromEnd[i] = rev.Count - 1;
            }
            rev.Reverse();
            return rev.ToArray();
        }
    }
}
