namespace Gazelle.Config;

/// <summary>
/// One problem found in a configuration file: where it is (file, 1-based line, 0 when the problem is not on a
/// line, such as a missing key or an unreadable file) and which key it concerns (null when the line has no
/// recognisable key). <see cref="ToString"/> gives <c>file:line: key: message</c>, the form shown to users.
/// </summary>
public sealed record ConfigError(string File, int Line, string? Key, string Message)
{
    public override string ToString()
    {
        string where = Line > 0 ? $"{File}:{Line}" : File;
        return Key is null ? $"{where}: {Message}" : $"{where}: {Key}: {Message}";
    }
}

/// <summary>The outcome of loading a configuration: a config, or the errors that prevented one. Never throws.</summary>
public sealed class ConfigResult
{
    private ConfigResult(GazelleConfig? config, IReadOnlyList<ConfigError> errors)
    {
        Config = config;
        Errors = errors;
    }

    public static ConfigResult Ok(GazelleConfig config) => new(config, []);
    public static ConfigResult Fail(IReadOnlyList<ConfigError> errors) => new(null, errors);
    public static ConfigResult Fail(ConfigError error) => new(null, [error]);

    public GazelleConfig? Config { get; }
    /// <summary>Every error found, in file order (empty on success).</summary>
    public IReadOnlyList<ConfigError> Errors { get; }
    public bool IsOk => Config is not null;

    /// <summary>All errors, one per line, for a log or stderr.</summary>
    public string ErrorText => string.Join(Environment.NewLine, Errors);
}
