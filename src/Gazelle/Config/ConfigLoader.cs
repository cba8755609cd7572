namespace Gazelle.Config;

/// <summary>
/// Finds and reads lstack.conf. Where to look comes in from the caller (the environment is read at the
/// process boundary, not here): <c>GAZELLE_CONF</c>, then Gazelle's <c>LSTACK_CONF_PATH</c>, then
/// <see cref="DefaultPath"/>.
/// </summary>
public static class ConfigLoader
{
    public const string DefaultPath = "/etc/gazelle/lstack.conf";
    public const string GazelleConfVariable = "GAZELLE_CONF";
    public const string LstackConfPathVariable = "LSTACK_CONF_PATH";

    /// <summary>The file to load, given the values of <c>GAZELLE_CONF</c> and <c>LSTACK_CONF_PATH</c> (null or
    /// empty when unset).</summary>
    public static string ResolvePath(string? gazelleConf, string? lstackConfPath) =>
        !string.IsNullOrWhiteSpace(gazelleConf) ? gazelleConf
        : !string.IsNullOrWhiteSpace(lstackConfPath) ? lstackConfPath
        : DefaultPath;

    /// <summary>Resolves the path through <paramref name="getEnvironment"/> (e.g.
    /// <see cref="Environment.GetEnvironmentVariable(string)"/>) and loads it.</summary>
    public static ConfigResult Load(Func<string, string?> getEnvironment)
    {
        ArgumentNullException.ThrowIfNull(getEnvironment);
        return LoadFile(ResolvePath(getEnvironment(GazelleConfVariable), getEnvironment(LstackConfPathVariable)));
    }

    /// <summary>Reads and parses <paramref name="path"/>; an unreadable file is an error naming it, not an exception.</summary>
    public static ConfigResult LoadFile(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return ConfigResult.Fail(new ConfigError(path, 0, null, $"cannot read configuration: {e.Message}"));
        }
        return GazelleConfigParser.Parse(text, path);
    }
}
