using Flint.Devices.Pci.Msix;

namespace Flint.Devices.Tests.Pci;

/// <summary>The host side of MSI-X vectors as a recorder: routes as the table last set them, and every trigger.</summary>
public sealed class FakeMsiVectors(int count) : IMsiVectors
{
    public int Count { get; } = count;
    public MsiMessage[] Messages { get; } = new MsiMessage[count];
    public bool[] Enabled { get; } = new bool[count];
    public int[] Triggers { get; } = new int[count];
    public int RouteCalls { get; private set; }
    public bool RefuseRoutes { get; set; }

    public bool Route(int index, MsiMessage message, bool enabled)
    {
        RouteCalls++;
        if (RefuseRoutes) { Enabled[index] = false; return false; }
        Messages[index] = message;
        Enabled[index] = enabled;
        return true;
    }

    public void Trigger(int index)
    {
        if (!Enabled[index]) throw new InvalidOperationException("vector triggered while its route is disabled");
        Triggers[index]++;
    }
}
