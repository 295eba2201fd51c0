namespace Flint.Api.Tests;

/// <summary>
/// A new connection costs no exception. The API server accepted until the listener said "would block", which .NET's
/// Accept reports by throwing: one SocketException per accepted client, whose dispatch made 1.9 MiB of the binary's
/// pages resident in an idle flint (issue 15, item 9) and cost each new connection its time.
/// </summary>
public sealed class AcceptWithoutExceptionsTests
{
    [Fact]
    public void Clients_are_accepted_and_served_without_a_first_chance_exception()
    {
        using var env = new Env(server: true);
        int thrown = 0;
        void Count(object? sender, System.Runtime.ExceptionServices.FirstChanceExceptionEventArgs e)
        {
            if (Thread.CurrentThread.Name == ApiServer.ThreadName) Interlocked.Increment(ref thrown);
        }
        AppDomain.CurrentDomain.FirstChanceException += Count;
        try
        {
            // One at a time, and several connecting at once (each wake-up accepts one; the listener stays ready).
            for (int i = 0; i < 3; i++)
            {
                using var c = env.Connect();
                Assert.Equal(200, c.Call("GET", "/").Status);
            }
            var many = Enumerable.Range(0, 5).Select(_ => env.Connect()).ToList();
            foreach (var c in many) Assert.Equal(200, c.Call("GET", "/version").Status);
            foreach (var c in many) c.Dispose();
        }
        finally
        {
            AppDomain.CurrentDomain.FirstChanceException -= Count;
        }
        Assert.Equal(0, Volatile.Read(ref thrown));
    }
}
