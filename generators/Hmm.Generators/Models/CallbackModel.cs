namespace Hmm.Generators.Models;

/// <summary>One user callback the generated code calls.</summary>
/// <param name="Kind">Which callback attribute the method carries.</param>
/// <param name="MethodName">The method's name, as written (callbacks are instance methods of the driver).</param>
/// <param name="ReturnsErrno">Whether it returns an errno where the signature also allows void (<c>[OnMirrorFault]</c>: a non-Ok errno stops the fault).</param>
internal sealed record CallbackModel(CallbackKind Kind, string MethodName, bool ReturnsErrno = false);
