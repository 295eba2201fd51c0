namespace Flint;

/// <summary>The kinds of Firecracker's `UtilsArgParserError`, plus Flint's refusal of a flag it knows but cannot honour.</summary>
public enum ArgParseErrorKind
{
    ForbiddenArgument, MissingArgument, MissingValue, UnexpectedArgument, DuplicateArgument,
    /// <summary>Flint: a Firecracker flag for a feature Flint does not have (snapshots, PCI).</summary>
    Unsupported,
}

/// <summary>
/// An argument error with Firecracker's exact wording. <see cref="Message"/> is the Display text (logged);
/// <see cref="DebugText"/> is the Rust Debug form Firecracker prints to stderr, e.g. `UnexpectedArgument("x")`.
/// </summary>
public sealed record ArgParseError(ArgParseErrorKind Kind, string Arg, string? Other = null, string? Reason = null)
{
    public string Message => Kind switch
    {
        ArgParseErrorKind.ForbiddenArgument => $"Argument '{Other}' cannot be used together with argument '{Arg}'.",
        ArgParseErrorKind.MissingArgument => $"Argument '{Arg}' required, but not found.",
        ArgParseErrorKind.MissingValue => $"The argument '{Arg}' requires a value, but none was supplied.",
        ArgParseErrorKind.UnexpectedArgument => $"Found argument '{Arg}' which wasn't expected, or isn't valid in this context.",
        ArgParseErrorKind.DuplicateArgument => $"The argument '{Arg}' was provided more than once.",
        _ => $"Argument '{Arg}' is not supported: {Reason}",
    };

    public string DebugText => Kind == ArgParseErrorKind.ForbiddenArgument
        ? $"{Kind}({RustDebug.Quote(Arg)}, {RustDebug.Quote(Other ?? "")})"
        : $"{Kind}({RustDebug.Quote(Arg)})";
}
