namespace Flint.Seccomp.Tests;

/// <summary>A tiny classic-BPF interpreter over struct seccomp_data, for checking compiled filters without the kernel.</summary>
public static class BpfInterpreter
{
    public static uint Run(ReadOnlySpan<SockFilter> prog, int nr, ulong[]? args = null, uint arch = Bpf.AUDIT_ARCH_X86_64)
    {
        var data = new byte[64];
        BitConverter.TryWriteBytes(data.AsSpan(0), nr);
        BitConverter.TryWriteBytes(data.AsSpan(4), arch);
        for (int i = 0; i < 6; i++) BitConverter.TryWriteBytes(data.AsSpan(16 + 8 * i), args != null && i < args.Length ? args[i] : 0UL);
        uint a = 0;
        int pc = 0, steps = 0;
        while (true)
        {
            if (pc < 0 || pc >= prog.Length) throw new InvalidOperationException($"pc {pc} out of the program");
            if (++steps > 100_000) throw new InvalidOperationException("no termination");
            var ins = prog[pc++];
            switch (ins.Code)
            {
                case Bpf.LdAbsW:
                    if (ins.K % 4 != 0 || ins.K > 60) throw new InvalidOperationException($"bad load offset {ins.K}");
                    a = BitConverter.ToUInt32(data, (int)ins.K);
                    break;
                case Bpf.AndK: a &= ins.K; break;
                case Bpf.Ja: pc += (int)ins.K; break;
                case Bpf.JeqK: pc += a == ins.K ? ins.Jt : ins.Jf; break;
                case Bpf.JgtK: pc += a > ins.K ? ins.Jt : ins.Jf; break;
                case Bpf.JgeK: pc += a >= ins.K ? ins.Jt : ins.Jf; break;
                case Bpf.RetK: return ins.K;
                default: throw new InvalidOperationException($"unsupported opcode 0x{ins.Code:x}");
            }
        }
    }
}
