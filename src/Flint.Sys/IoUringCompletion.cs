namespace Flint.Sys;

/// <summary>One reaped completion: the submitter's tag and the operation's result (bytes, or -errno).</summary>
public readonly record struct IoUringCompletion(ulong UserData, int Result);
