namespace Flint.Fuzz;

/// <summary>
/// Records the exceptions thrown on this thread while a target runs, caught or not. The devices and the API router
/// end in catch-alls (a defect must cost a request, not the VMM), so an escaped exception is not the only kind of
/// crash: one swallowed by such a safety net means guest or client input reached a code path that was never meant
/// to throw. <see cref="End"/> turns the first unexpected one into a finding.
/// </summary>
public static class ExceptionWatch
{
    private const int MaxKept = 16;
    [ThreadStatic] private static List<Exception>? t_seen;
    [ThreadStatic] private static bool t_active;

    static ExceptionWatch()
    {
        AppDomain.CurrentDomain.FirstChanceException += (_, e) =>
        {
            if (!t_active) return;
            var seen = t_seen;
            if (seen != null && seen.Count < MaxKept) seen.Add(e.Exception);
        };
    }

    public static void Begin()
    {
        (t_seen ??= new List<Exception>()).Clear();
        t_active = true;
    }

    /// <summary>Stops recording; throws a <see cref="FuzzInvariantException"/> naming the first exception <paramref name="expected"/> rejects.</summary>
    public static void End(Func<Exception, bool> expected)
    {
        t_active = false;
        foreach (var e in t_seen!)
        {
            if (expected(e)) continue;
            throw new FuzzInvariantException($"{e.GetType().FullName} thrown (and caught by a safety net): {e.Message}\n{e.StackTrace}");
        }
    }
}
