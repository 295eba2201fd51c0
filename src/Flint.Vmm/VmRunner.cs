using Flint.Arch.X86;
using Flint.Kvm;
using Flint.Vmm.Builder;
using Flint.Vmm.Config;
using Flint.Vmm.Logging;

namespace Flint.Vmm;

/// <summary>Builds a VM from a validated configuration, runs it to the end and maps failures to exit codes.</summary>
public static class VmRunner
{
    public static int Run(VmConfig config, VmOptions options)
    {
        Vmm vmm;
        try
        {
            vmm = VmBuilder.Build(config, options);
        }
        catch (ConfigException e)
        {
            Logger.Error($"Building VMM configured from cmdline json failed: {e.Message}");
            return ExitCodes.BadConfiguration;
        }
        catch (Exception e) when (e is KernelLoadException or InitrdLoadException or KernelCmdlineException)
        {
            Logger.Error($"Building VMM configured from cmdline json failed: {e.Message}");
            return ExitCodes.BadConfiguration;
        }
        catch (Exception e) when (e is Flint.Sys.SysException or IOException or InvalidOperationException or Flint.Memory.GuestMemoryException)
        {
            Logger.Error($"Building VMM configured from cmdline json failed: {e.Message}");
            return ExitCodes.GenericError;
        }

        using (vmm)
        {
            Logger.Info("Successfully started microvm that was configured from one single json");
            vmm.StartVcpus();
            int code = vmm.RunUntilExit();
            Logger.Info(code == 0 ? "Firecracker exiting successfully. exit_code=0" : $"Flint exiting with error. exit_code={code}");
            return code;
        }
    }
}
