using Flint.Vmm.Logging;
using Flint.Vmm.Metrics;

namespace Flint.Vmm.Config;

/// <summary>
/// The config file's "logger" and "metrics" sections, applied as Firecracker's VmResources::from_json applies them:
/// before anything else is built, on top of what the command line set (the logger), or once (metrics). Failures are
/// <see cref="ConfigException"/>s in Firecracker's words ("Logger error: ...", "Metrics error: ...").
/// </summary>
public static class ConfigOutputs
{
    public static void Apply(VmConfig config, MetricsOutput metrics, string instanceId = "anonymous-instance")
    {
        if (config.Logger is { } l)
        {
            LogLevel? level = null;
            if (l.Level != null)
            {
                if (!LogLevels.TryParse(l.Level, out var lv)) throw new ConfigException($"Logger error: Invalid log level: {l.Level}.");
                level = lv;
            }
            try { Logger.Update(l.LogPath, level, l.ShowLevel, l.ShowLogOrigin, l.Module); }
            catch (IOException e) { throw new ConfigException($"Logger error: Failed to open target file: {e.Message}"); }
        }
        if (config.Metrics is { } m)
        {
            try { metrics.Configure(m.MetricsPath, m.EmitId == true ? instanceId : null, m.Properties); }
            catch (ConfigException e) { throw new ConfigException($"Metrics error: {e.Message}"); }
        }
    }
}
