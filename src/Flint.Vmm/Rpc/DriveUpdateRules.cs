namespace Flint.Vmm.Rpc;

/// <summary>PATCH /drives/{id} answers that follow Firecracker's update_block_device.</summary>
public static class DriveUpdateRules
{
    /// <summary>
    /// A PATCH naming only the drive: Firecracker treats it as a vhost-user block config update, which a virtio
    /// block device refuses with BlockError::InvalidBlockBackend inside DriveError::DeviceUpdate.
    /// </summary>
    public const string WrongBackend = "Block: Running method expected different backend.";

    public const string NothingToUpdate =
        "Unable to patch the block device: Block: Running method expected different backend. Please verify the request arguments.";
}
