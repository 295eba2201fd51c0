namespace Flint.Seccomp;

public enum ArgType { Dword, Qword }

public enum CmpOp { Eq, Ne, Lt, Le, Gt, Ge, MaskedEq }

/// <summary>One argument check: <c>args[Index] OP Value</c> (for MaskedEq: <c>(args[Index] &amp; Mask) == Value</c>).
/// Dword compares only the low 32 bits of the argument.</summary>
public sealed record SeccompCondition(int Index, ArgType Type, CmpOp Op, ulong Value, ulong Mask = 0, string? Comment = null);

/// <summary>A syscall and the conditions (all must hold) under which it matches; no conditions: always.</summary>
public sealed record SeccompRule(string Syscall, int Number, IReadOnlyList<SeccompCondition> Conditions, string? Comment = null);

/// <summary>One thread kind's filter: rules are or-ed; a match gives <see cref="FilterAction"/>, else <see cref="DefaultAction"/>.</summary>
public sealed record SeccompFilterSpec(SeccompAction DefaultAction, SeccompAction FilterAction, IReadOnlyList<SeccompRule> Rules)
{
    /// <summary>Distinct syscalls the filter names.</summary>
    public int SyscallCount => Rules.Select(r => r.Number).Distinct().Count();
}

/// <summary>The JSON had a problem; the message names the filter, rule and field.</summary>
public sealed class SeccompConfigException(string message, Exception? inner = null) : Exception(message, inner);
