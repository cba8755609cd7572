using System.Globalization;
using System.Text;

namespace Gazelle.Config;

public enum ConfigValueKind
{
    String,
    Integer,
    Float,
    Boolean,
    /// <summary>An array <c>[ ... ]</c> or list <c>( ... )</c> of scalars.</summary>
    List,
}

/// <summary>A value as written in the file, before it is given a meaning.</summary>
public sealed class ConfigValue
{
    public ConfigValueKind Kind { get; init; }
    public string String { get; init; } = "";
    public long Integer { get; init; }
    public double Float { get; init; }
    public bool Boolean { get; init; }
    public IReadOnlyList<ConfigValue> Items { get; init; } = [];
    public int Line { get; init; }

    public static string KindName(ConfigValueKind k) => k switch
    {
        ConfigValueKind.String => "a string",
        ConfigValueKind.Integer => "an integer",
        ConfigValueKind.Float => "a number",
        ConfigValueKind.Boolean => "a boolean",
        _ => "a list",
    };
}

/// <summary>One <c>key = value</c> statement.</summary>
public sealed record ConfigSetting(string Key, ConfigValue Value, int Line);

/// <summary>
/// Parser for the libconfig subset lstack.conf uses: <c>name = value</c> (or <c>name : value</c>) statements,
/// each optionally ended by <c>;</c> or <c>,</c>; values are double-quoted strings (C escapes, adjacent strings
/// concatenated), integers (decimal or <c>0x</c> hex, optional sign and <c>L</c> suffix), floats, booleans
/// (<c>true</c>/<c>false</c>, any case) and arrays <c>[ ... ]</c> or lists <c>( ... )</c> of scalars;
/// comments are <c>#</c>, <c>//</c> and <c>/* */</c>. Groups <c>{ }</c> are refused (lstack.conf has none).
/// Pure: text in, settings and errors out; never throws.
/// </summary>
public static class ConfigSyntax
{
    public static (IReadOnlyList<ConfigSetting> Settings, IReadOnlyList<ConfigError> Errors) Parse(string text, string fileName)
    {
        var p = new Parser(text ?? "", fileName);
        p.Run();
        return (p.Settings, p.Errors);
    }

    private sealed class Parser(string text, string file)
    {
        private int _pos;
        private int _line = 1;
        private string? _key;
        public readonly List<ConfigSetting> Settings = [];
        public readonly List<ConfigError> Errors = [];

        private sealed class SyntaxException(string message) : Exception(message);

        public void Run()
        {
            while (true)
            {
                _key = null;
                try
                {
                    SkipSpaceAndComments();
                    if (_pos >= text.Length) return;
                    int startLine = _line;
                    string key = ReadName();
                    _key = key;
                    SkipSpaceAndComments();
                    if (!Accept('=') && !Accept(':')) Fail("expected '=' after the key");
                    int afterEquals = _pos, afterEqualsLine = _line;
                    SkipSpaceAndComments();
                    if (_line != afterEqualsLine && !LooksLikeValue())
                    {
                        // "key =" alone on its line: report it there and resume with the next line's statement.
                        _pos = afterEquals;
                        _line = afterEqualsLine;
                        Fail("missing value");
                    }
                    var value = ReadValue(nested: false);
                    SkipSpaceAndComments();
                    if (!Accept(';')) Accept(',');
                    Settings.Add(new ConfigSetting(key, value, startLine));
                }
                catch (SyntaxException e)
                {
                    Errors.Add(new ConfigError(file, _line, _key, e.Message));
                    SkipToNextLine();
                }
            }
        }

        // The exception never leaves the parser: it unwinds one statement, which is then reported and skipped.
        [System.Diagnostics.CodeAnalysis.DoesNotReturn]
        private void Fail(string message) => throw new SyntaxException(message);

        private bool LooksLikeValue()
        {
            char c = Peek;
            if (_pos >= text.Length) return false;
            if (c is '"' or '[' or '(' or '{' or '-' or '+' or '.' || char.IsAsciiDigit(c)) return true;
            var rest = text.AsSpan(_pos);
            return rest.StartsWith("true", StringComparison.OrdinalIgnoreCase) || rest.StartsWith("false", StringComparison.OrdinalIgnoreCase);
        }

        private char Peek => _pos < text.Length ? text[_pos] : '\0';

        private bool Accept(char c)
        {
            if (Peek != c || _pos >= text.Length) return false;
            _pos++;
            return true;
        }

        private void SkipToNextLine()
        {
            while (_pos < text.Length && text[_pos] != '\n') _pos++;
        }

        private void SkipSpaceAndComments()
        {
            while (_pos < text.Length)
            {
                char c = text[_pos];
                if (c == '\n')
                {
                    _line++;
                    _pos++;
                }
                else if (char.IsWhiteSpace(c)) _pos++;
                else if (c == '#' || (c == '/' && _pos + 1 < text.Length && text[_pos + 1] == '/')) SkipToNextLine();
                else if (c == '/' && _pos + 1 < text.Length && text[_pos + 1] == '*')
                {
                    int startLine = _line;
                    _pos += 2;
                    while (_pos < text.Length && !(text[_pos] == '*' && _pos + 1 < text.Length && text[_pos + 1] == '/'))
                    {
                        if (text[_pos] == '\n') _line++;
                        _pos++;
                    }
                    if (_pos >= text.Length)
                    {
                        _line = startLine;
                        Fail("unterminated /* comment");
                    }
                    _pos += 2;
                }
                else return;
            }
        }

        private string ReadName()
        {
            int start = _pos;
            if (!(char.IsAsciiLetter(Peek) || Peek == '*')) Fail($"expected a key name, found '{Printable(Peek)}'");
            while (char.IsAsciiLetterOrDigit(Peek) || Peek is '_' or '-' or '*') _pos++;
            return text[start.._pos];
        }

        private ConfigValue ReadValue(bool nested)
        {
            char c = Peek;
            int line = _line;
            if (c == '"') return new ConfigValue { Kind = ConfigValueKind.String, String = ReadStrings(), Line = line };
            if (c is '[' or '(')
            {
                if (nested) Fail("lists of lists are not supported");
                return ReadList(c == '[' ? ']' : ')');
            }
            if (c == '{') Fail("groups ({ ... }) are not supported in lstack.conf");
            if (char.IsAsciiDigit(c) || c is '-' or '+' or '.') return ReadNumber();
            if (char.IsAsciiLetter(c))
            {
                int start = _pos;
                while (char.IsAsciiLetterOrDigit(Peek) || Peek == '_') _pos++;
                string word = text[start.._pos];
                if (word.Equals("true", StringComparison.OrdinalIgnoreCase)) return new ConfigValue { Kind = ConfigValueKind.Boolean, Boolean = true, Line = line };
                if (word.Equals("false", StringComparison.OrdinalIgnoreCase)) return new ConfigValue { Kind = ConfigValueKind.Boolean, Boolean = false, Line = line };
                Fail($"'{word}' is not a value (strings need double quotes)");
            }
            if (_pos >= text.Length || c == '\n' || c == ';') Fail("missing value");
            Fail($"unexpected '{Printable(c)}'");
            return null!;
        }

        private ConfigValue ReadList(char close)
        {
            int line = _line;
            _pos++;
            var items = new List<ConfigValue>();
            SkipSpaceAndComments();
            if (Accept(close)) return new ConfigValue { Kind = ConfigValueKind.List, Items = items, Line = line };
            while (true)
            {
                SkipSpaceAndComments();
                if (_pos >= text.Length) Fail($"list not closed with '{close}'");
                var v = ReadValue(nested: true);
                if (items.Count > 0 && items[0].Kind != v.Kind && !(IsNumber(items[0].Kind) && IsNumber(v.Kind)))
                    Fail("list elements must all have the same type");
                items.Add(v);
                SkipSpaceAndComments();
                if (Accept(',')) continue;
                if (Accept(close)) return new ConfigValue { Kind = ConfigValueKind.List, Items = items, Line = line };
                if (_pos >= text.Length) Fail($"list not closed with '{close}'");
                Fail($"expected ',' or '{close}' in list, found '{Printable(Peek)}'");
            }
        }

        private static bool IsNumber(ConfigValueKind k) => k is ConfigValueKind.Integer or ConfigValueKind.Float;

        private string ReadStrings()
        {
            var sb = new StringBuilder();
            while (true)
            {
                ReadString(sb);
                // libconfig concatenates adjacent string literals ("a" "b" == "ab").
                int save = _pos, saveLine = _line;
                SkipSpaceAndComments();
                if (Peek != '"')
                {
                    _pos = save;
                    _line = saveLine;
                    return sb.ToString();
                }
            }
        }

        private void ReadString(StringBuilder sb)
        {
            _pos++; // opening quote
            while (true)
            {
                if (_pos >= text.Length || text[_pos] == '\n') Fail("missing closing quote");
                char c = text[_pos++];
                if (c == '"') return;
                if (c != '\\')
                {
                    sb.Append(c);
                    continue;
                }
                if (_pos >= text.Length) Fail("missing closing quote");
                char e = text[_pos++];
                switch (e)
                {
                    case '"': sb.Append('"'); break;
                    case '\\': sb.Append('\\'); break;
                    case 'n': sb.Append('\n'); break;
                    case 't': sb.Append('\t'); break;
                    case 'r': sb.Append('\r'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'x':
                        byte b = 0;
                        if (_pos + 2 > text.Length || !byte.TryParse(text.AsSpan(_pos, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out b))
                            Fail("bad \\x escape (two hex digits expected)");
                        sb.Append((char)b);
                        _pos += 2;
                        break;
                    default: Fail($"unknown escape '\\{Printable(e)}'"); break;
                }
            }
        }

        private ConfigValue ReadNumber()
        {
            int line = _line;
            int start = _pos;
            while (char.IsAsciiLetterOrDigit(Peek) || Peek is '-' or '+' or '.') _pos++;
            string token = text[start.._pos];
            string t = token;
            bool negative = false;
            if (t.StartsWith('-') || t.StartsWith('+'))
            {
                negative = t[0] == '-';
                t = t[1..];
            }
            if (t.EndsWith("LL", StringComparison.OrdinalIgnoreCase)) t = t[..^2];
            else if (t.EndsWith('L') || t.EndsWith('l')) t = t[..^1];
            if (t.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            {
                if (t.Length > 2 && ulong.TryParse(t.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong hex) && hex <= long.MaxValue)
                    return new ConfigValue { Kind = ConfigValueKind.Integer, Integer = negative ? -(long)hex : (long)hex, Line = line };
                Fail($"bad hexadecimal integer '{token}'");
            }
            if (t.Length > 0 && t.All(char.IsAsciiDigit))
            {
                if (long.TryParse(token.TrimEnd('L', 'l'), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v))
                    return new ConfigValue { Kind = ConfigValueKind.Integer, Integer = v, Line = line };
                Fail($"integer '{token}' out of range");
            }
            if (double.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d))
                return new ConfigValue { Kind = ConfigValueKind.Float, Float = d, Line = line };
            Fail($"bad number '{token}'");
            return null!;
        }

        private static string Printable(char c) => c switch
        {
            '\0' => "end of file",
            '\n' => "end of line",
            _ when char.IsControl(c) => $"\\x{(int)c:x2}",
            _ => c.ToString(),
        };
    }
}
