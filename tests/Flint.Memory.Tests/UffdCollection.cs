namespace Flint.Memory.Tests;

/// <summary>
/// Test classes that open userfaultfds and sockets to handler processes run one after the other: UffdTests counts this
/// process's sockets and userfaultfds before and after a failed connect, and a neighbour class opening its own in parallel
/// made that count flaky (2 for 4 under load).
/// </summary>
[CollectionDefinition(Name)]
public sealed class UffdCollection
{
    public const string Name = "uffd";
}
