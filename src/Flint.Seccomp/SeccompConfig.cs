using System.Reflection;

namespace Flint.Seccomp;

/// <summary>
/// The three thread kinds that get their own filter, as in Firecracker's JSON ("vmm", "api", "vcpu"), and the process
/// baseline ("process") that every thread runs under first and the role filters stack on.
/// </summary>
public enum ThreadKind { Vmm, Api, Vcpu, Process }

public static class ThreadKinds
{
    public static string JsonName(this ThreadKind kind) => kind switch
    {
        ThreadKind.Vmm => "vmm",
        ThreadKind.Api => "api",
        ThreadKind.Vcpu => "vcpu",
        ThreadKind.Process => "process",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>The thread roles a filter file must define (Firecracker's).</summary>
    public static readonly ThreadKind[] Roles = [ThreadKind.Vmm, ThreadKind.Api, ThreadKind.Vcpu];

    /// <summary>The roles and the process baseline.</summary>
    public static readonly ThreadKind[] All = [ThreadKind.Vmm, ThreadKind.Api, ThreadKind.Vcpu, ThreadKind.Process];
}

/// <summary>
/// Which filters the VMM installs: the built-in ones (<see cref="Default"/>), a user's (<c>--seccomp-filter FILE</c>,
/// <see cref="Load"/>) or none (<c>--no-seccomp</c>, <see cref="Disabled"/>).
/// Unlike Firecracker, which takes a file of pre-compiled BPF from seccompiler-bin, <c>--seccomp-filter</c> takes the
/// seccompiler JSON itself and compiles it at load time (microseconds); the file must define vmm, api and vcpu, and
/// may define "process" (the baseline every thread runs under, see <see cref="SeccompFilter.InstallOnAllThreads"/>);
/// a file without one (any Firecracker file) gets the built-in baseline.
/// </summary>
public sealed class SeccompConfig
{
    private readonly SockFilter[]?[] _programs;

    private SeccompConfig(SockFilter[]?[] programs, bool enabled, string source)
    {
        _programs = programs;
        IsEnabled = enabled;
        Source = source;
    }

    public bool IsEnabled { get; }

    /// <summary>"default", the file path, or "disabled".</summary>
    public string Source { get; }

    /// <summary>The compiled program for a thread kind; empty when seccomp is disabled.</summary>
    public ReadOnlySpan<SockFilter> Get(ThreadKind kind) => _programs[(int)kind] ?? [];

    public static SeccompConfig Disabled { get; } = new([null, null, null, null], false, "disabled");

    public static SeccompConfig Default => s_default ??= new(ThreadKinds.All.Select(DefaultFilters.Get).ToArray(), true, "default");
    private static SeccompConfig? s_default;

    /// <summary>Reads and compiles a seccompiler JSON file; throws <see cref="SeccompConfigException"/> on any problem.</summary>
    public static SeccompConfig Load(string path)
    {
        string json;
        try { json = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SeccompConfigException($"Failed to read the seccomp filter file {path}: {e.Message}", e);
        }
        return FromJson(json, path);
    }

    public static SeccompConfig FromJson(string json, string source = "json")
    {
        var specs = FilterParser.Parse(json);
        var programs = new SockFilter[]?[ThreadKinds.All.Length];
        foreach (var kind in ThreadKinds.All)
        {
            if (!specs.TryGetValue(kind.JsonName(), out var spec))
            {
                if (kind == ThreadKind.Process) { programs[(int)kind] = DefaultFilters.Get(kind); continue; }
                throw new SeccompConfigException($"The seccomp filter file has no filter for the '{kind.JsonName()}' thread kind.");
            }
            programs[(int)kind] = BpfCompiler.Compile(spec, kind.JsonName());
        }
        foreach (var name in specs.Keys)
            if (name is not ("vmm" or "api" or "vcpu" or "process"))
                throw new SeccompConfigException($"The seccomp filter file defines an unknown thread kind '{name}' (expected vmm, api, vcpu and optionally process).");
        return new SeccompConfig(programs, true, source);
    }
}

/// <summary>The built-in allow-lists (embedded <c>default-filters.json</c>), compiled once.</summary>
public static class DefaultFilters
{
    private static Dictionary<string, SeccompFilterSpec>? s_specs;
    private static readonly SockFilter[]?[] s_programs = new SockFilter[]?[4];

    /// <summary>The JSON text of the built-in filters (same format as <c>--seccomp-filter</c>).</summary>
    public static string Json
    {
        get
        {
            using var s = typeof(DefaultFilters).Assembly.GetManifestResourceStream("Flint.Seccomp.default-filters.json")
                ?? throw new InvalidOperationException("default-filters.json resource missing");
            using var r = new StreamReader(s);
            return r.ReadToEnd();
        }
    }

    public static SeccompFilterSpec GetSpec(ThreadKind kind)
    {
        s_specs ??= FilterParser.Parse(Json);
        return s_specs[kind.JsonName()];
    }

    /// <summary>
    /// The compiled program, from the pre-compiled copy generated at development time (DefaultFilters.Compiled.cs,
    /// kept equal to the JSON by a test): parsing and compiling the JSON at every start cost about 2 ms of CPU.
    /// </summary>
    public static SockFilter[] Get(ThreadKind kind) => s_programs[(int)kind] ??= PrecompiledFilters.Program(kind);

    /// <summary>Distinct syscalls allowed for a thread kind.</summary>
    public static int SyscallCount(ThreadKind kind) => GetSpec(kind).SyscallCount;
}
