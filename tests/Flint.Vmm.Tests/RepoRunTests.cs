using System.Diagnostics;

namespace Flint.Vmm.Tests;

/// <summary>
/// Repo.RunFlint's limit holds whatever the process does: the runner returns within its timeout and a few seconds,
/// even when a child the process left behind keeps its stdout and stderr open (a wait for the pipes' end would then
/// last as long as that child).
/// </summary>
public sealed class RepoRunTests
{
    /// <summary>Longer than any limit below: a run still going by then is the hang these tests are about.</summary>
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(60);

    private static (bool Seen, bool Exited, Repo.Result Result) RunUnderGuard(TimeSpan timeout, string script)
    {
        var run = Task.Run(() => Repo.RunProgram("/bin/sh", timeout, static l => l == "milestone", ["-c", script]));
        Assert.True(((IAsyncResult)run).AsyncWaitHandle.WaitOne(Guard),
            $"the runner (limit {timeout.TotalSeconds} s) was still waiting after {Guard.TotalSeconds} s");
        return run.Result;
    }

    [Fact]
    public void A_process_that_exits_while_its_child_holds_the_pipes_is_reported_within_the_limit()
    {
        var sw = Stopwatch.StartNew();
        var (_, exited, r) = RunUnderGuard(TimeSpan.FromSeconds(10), "sleep 120 & echo said-before-exit; exit 3");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"took {sw.Elapsed}");
        Assert.True(exited);
        Assert.Equal(3, r.ExitCode);
        Assert.Contains("said-before-exit", r.Stdout);
    }

    [Fact]
    public void A_process_killed_at_its_limit_while_a_child_holds_the_pipes_is_reported_within_the_limit()
    {
        var sw = Stopwatch.StartNew();
        var (_, exited, r) = RunUnderGuard(TimeSpan.FromSeconds(3), "(sleep 120 &); echo said-before-limit; exec sleep 120");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"took {sw.Elapsed}");
        Assert.False(exited);
        Assert.Contains("said-before-limit", r.Stdout);
    }

    [Fact]
    public void A_process_that_exits_gives_all_its_output()
    {
        var (_, exited, r) = RunUnderGuard(TimeSpan.FromSeconds(20), "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done; echo last >&2");
        Assert.True(exited);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("line1999", r.Stdout);
        Assert.Contains("last", r.Stderr);
    }
}
