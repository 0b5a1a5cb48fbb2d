namespace Hmm.Generators.Models;

/// <summary>One generated file: its deterministic hint name and text.</summary>
/// <param name="HintName">Fully qualified metadata name + concern + ".g.cs".</param>
/// <param name="Text">The source text.</param>
internal sealed record GeneratedSource(string HintName, string Text);
