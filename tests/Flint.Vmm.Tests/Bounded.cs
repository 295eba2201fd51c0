namespace Flint.Vmm.Tests;

/// <summary>
/// Runs a test body on its own thread and fails the test if it has not finished in time: a deadlock under test
/// becomes a failure with a message instead of a hung test run (the stuck thread is a background thread).
/// </summary>
internal static class Bounded
{
    public static void Run(TimeSpan limit, Action body, string what)
    {
        Exception? failure = null;
        var t = new Thread(() =>
        {
            try { body(); }
            catch (Exception e) { failure = e; }
        })
        { IsBackground = true, Name = "bounded test body" };
        t.Start();
        if (!t.Join(limit)) Assert.Fail($"{what}: still running after {limit.TotalSeconds:F0} s (hang)");
        if (failure != null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
    }
}
