using Hmm.Runtime.Scheduling;

namespace Hmm.Samples.TestHmm.Exploration;

/// <summary>A named race scenario for <see cref="Explorer"/>: sets up a machine, spawns the racing logical threads, registers oracles.</summary>
/// <param name="Name">The name <c>hmmsim explore NAME</c> takes.</param>
/// <param name="Description">One line on what races.</param>
/// <param name="Body">The exploration body.</param>
public sealed record RaceScenario(string Name, string Description, Action<ExploreContext> Body);
