using Hmm.Runtime.Scheduling;

namespace Hmm.Samples.Nouveau.Exploration;

/// <summary>
/// A named GPU race scenario for <see cref="Explorer"/> (the GPU half of the exploration catalogue;
/// the catalogue hmmsim lists wraps these as its own scenario records).
/// </summary>
/// <param name="Name">The name <c>hmmsim explore NAME</c> takes.</param>
/// <param name="Description">One line on what races.</param>
/// <param name="Body">The exploration body (builds a fresh world per schedule).</param>
public sealed record GpuRace(string Name, string Description, Action<ExploreContext> Body);

/// <summary>The driver a GPU race runs: a DSL declaration and its SVM logic (tests plant bugs by passing their own).</summary>
/// <param name="Driver">The generated driver surface.</param>
/// <param name="Svm">Its SVM logic (bind, run, evict, unload).</param>
public readonly record struct GpuUnderTest(IGeneratedGpuDriver Driver, GpuSvm Svm);
