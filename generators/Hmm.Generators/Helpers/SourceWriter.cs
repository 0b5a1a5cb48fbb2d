using System.Text;

namespace Hmm.Generators.Helpers;

/// <summary>An indented text writer over a <see cref="StringBuilder"/> (no NormalizeWhitespace, no syntax trees).</summary>
internal sealed class SourceWriter
{
    private readonly StringBuilder _text = new();
    private int _indent;

    /// <summary>Appends one line at the current indentation (an empty line stays empty).</summary>
    public SourceWriter Line(string line = "")
    {
        if (line.Length != 0) _text.Append(' ', _indent * 4).Append(line);
        _text.Append('\n');
        return this;
    }

    /// <summary>Appends every line of a block, each at the current indentation plus its own leading spaces.</summary>
    public SourceWriter Block(string block)
    {
        foreach (var raw in block.Replace("\r\n", "\n").Split('\n')) Line(raw.TrimEnd());
        return this;
    }

    /// <summary>Opens a brace block.</summary>
    public SourceWriter Open(string header)
    {
        Line(header);
        Line("{");
        _indent++;
        return this;
    }

    /// <summary>Closes a brace block.</summary>
    public SourceWriter Close(string suffix = "")
    {
        _indent--;
        Line("}" + suffix);
        return this;
    }

    public override string ToString() => _text.ToString();
}
