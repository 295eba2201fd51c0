using Flint.Devices;

namespace Flint.Devices.Tests.Legacy;

internal sealed class CountingInterrupt : IInterrupt
{
    public int Count;
    public void Trigger() => Count++;
}
