using System.Diagnostics;

namespace Flint.Fuzz;

/// <summary>
/// Hang detection outside AFL (which has its own -t): one background thread that kills the process with exit code 3
/// when a single input has run longer than <see cref="LimitMs"/>, after printing which target was stuck.
/// </summary>
public static class Watchdog
{
    public static int LimitMs = 2000;
    private static long s_startedAt; // Stopwatch ticks of the running input's start, 0 when idle
    private static Thread? s_thread;
    private static byte[]? s_input;

    /// <summary>Where a hanging input is saved (hang-PID.bin); null: not saved.</summary>
    public static string? HangDir;

    public static void Guard(byte[] input, Action run)
    {
        s_thread ??= StartThread();
        s_input = input;
        Volatile.Write(ref s_startedAt, Stopwatch.GetTimestamp());
        try { run(); }
        finally { Volatile.Write(ref s_startedAt, 0); }
    }

    private static Thread StartThread()
    {
        var t = new Thread(() =>
        {
            while (true)
            {
                Thread.Sleep(100);
                long at = Volatile.Read(ref s_startedAt);
                if (at != 0 && Stopwatch.GetElapsedTime(at).TotalMilliseconds > LimitMs)
                {
                    Console.Error.WriteLine($"HANG: one input ran for more than {LimitMs} ms");
                    if (HangDir != null && s_input != null)
                    {
                        string path = Path.Combine(HangDir, $"hang-{Environment.ProcessId}.bin");
                        File.WriteAllBytes(path, s_input);
                        Console.Error.WriteLine($"HANG input saved to {path}");
                    }
                    Console.Error.Flush();
                    Environment.Exit(3);
                }
            }
        })
        { IsBackground = true, Name = "fuzz-watchdog" };
        t.Start();
        return t;
    }
}
