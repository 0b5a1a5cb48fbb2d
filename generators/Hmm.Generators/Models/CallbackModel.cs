namespace Hmm.Generators.Models;

/// <summary>One user callback the generated code calls.</summary>
/// <param name="Kind">Which callback attribute the method carries.</param>
/// <param name="MethodName">The method's name, as written (callbacks are instance methods of the driver).</param>
internal sealed record CallbackModel(CallbackKind Kind, string MethodName);
