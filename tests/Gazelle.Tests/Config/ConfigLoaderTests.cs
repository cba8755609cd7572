using Gazelle.Config;

namespace Gazelle.Tests.Configuration;

public class ConfigLoaderTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("gazelle-conf-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [TestCase("/a.conf", "/b.conf", "/a.conf")]
    [TestCase(null, "/b.conf", "/b.conf")]
    [TestCase("", "/b.conf", "/b.conf")]
    [TestCase(null, null, "/etc/gazelle/lstack.conf")]
    [TestCase("  ", "", "/etc/gazelle/lstack.conf")]
    public void PathComesFromGazelleConfThenLstackConfPathThenDefault(string? gazelleConf, string? lstack, string expected) =>
        Assert.That(ConfigLoader.ResolvePath(gazelleConf, lstack), Is.EqualTo(expected));

    [Test]
    public void LoadsTheFileTheEnvironmentNames()
    {
        string good = Path.Combine(_dir, "good.conf");
        string other = Path.Combine(_dir, "other.conf");
        File.WriteAllText(good, "backend=\"inmemory\"\nhost_addr=\"10.0.0.2\"\nmask_addr=\"255.255.255.0\"\n");
        File.WriteAllText(other, "this is not a config\n");
        var env = new Dictionary<string, string?> { ["GAZELLE_CONF"] = good, ["LSTACK_CONF_PATH"] = other };
        var r = ConfigLoader.Load(k => env.GetValueOrDefault(k));
        Assert.That(r.IsOk, Is.True, r.ErrorText);
        Assert.That(r.Config!.Source, Is.EqualTo(good));

        env.Remove("GAZELLE_CONF");
        var bad = ConfigLoader.Load(k => env.GetValueOrDefault(k));
        Assert.That(bad.IsOk, Is.False);
        Assert.That(bad.Errors[0].ToString(), Does.StartWith($"{other}:1: this: "));
    }

    [Test]
    public void MissingFileIsAnErrorNamingIt()
    {
        string path = Path.Combine(_dir, "absent.conf");
        var r = ConfigLoader.LoadFile(path);
        Assert.That(r.IsOk, Is.False);
        Assert.That(r.Errors.Single().ToString(), Does.StartWith($"{path}: cannot read configuration"));
    }
}
