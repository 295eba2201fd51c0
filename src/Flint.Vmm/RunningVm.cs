using Flint.Vmm.Rpc;

namespace Flint.Vmm;

/// <summary>The API's view of a started VM: pause/resume, Ctrl+Alt+Del, drive backing-file swaps.</summary>
public sealed class RunningVm(Vmm vmm) : IRunningVm
{
    public Vmm Vmm { get; } = vmm;

    public bool IsPaused => Vmm.IsPaused;
    public void Pause() => Vmm.Pause();
    public void Resume() => Vmm.Resume();

    public void SendCtrlAltDel()
    {
        if (!Vmm.I8042.SendCtrlAltDel())
            throw new InvalidOperationException("Failed to send Ctrl+Alt+Del: the i8042 buffer is full.");
    }

    public void PatchDrive(string driveId, string pathOnHost)
    {
        foreach (var (id, _, dev) in Vmm.Blocks)
        {
            if (id != driveId) continue;
            dev.UpdateBackingFile(pathOnHost);
            return;
        }
        throw new InvalidOperationException($"Invalid block device ID: {driveId}.");
    }
}
