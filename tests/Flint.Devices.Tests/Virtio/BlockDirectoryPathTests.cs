using Flint.Devices.Virtio.Block;
using Flint.Sys;

namespace Flint.Devices.Tests.Virtio;

/// <summary>
/// A drive whose path is a directory is refused in words, found from the open fd (EISDIR on a read) rather than by
/// stat(2) on the path: the check also runs on the VMM thread after the start (PCI hotplug, PATCH /drives), whose
/// seccomp filter has no stat (the nested hotplug run died there with "bad syscall (4)").
/// </summary>
public sealed class BlockDirectoryPathTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_directory_is_refused_in_words(bool readOnly)
    {
        var dir = Directory.CreateTempSubdirectory("flint-blkdir-").FullName;
        try
        {
            var e = Assert.Throws<SysException>(() => new VirtioBlock(dir, readOnly));
            Assert.Contains($"{dir} is a directory: a drive needs a disk image file or a block device", e.Message);
        }
        finally { Directory.Delete(dir); }
    }

    [Fact]
    public void An_empty_file_is_still_a_disk()
    {
        var f = Path.GetTempFileName();
        try
        {
            using var b = new VirtioBlock(f, readOnly: true);
            Assert.True(b.IsReadOnly);
        }
        finally { File.Delete(f); }
    }
}
