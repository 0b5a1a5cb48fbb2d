using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Hmm.Benchmarks;

/// <summary>
/// <c>dotnet run -c Release --project tests/Hmm.Benchmarks -- --analyzer-profile [rounds]</c>: where the
/// analyzer's time goes on the synthetic corpus. Runs the build with the analyzers off and on
/// (sequential analysis, Roslyn's per-analyzer execution time), then once more with every action the
/// analyzer registers wrapped in a stopwatch, keyed by the method that registered it.
/// </summary>
internal static class AnalyzerProfile
{
    public static void Run(int rounds)
    {
        var corpus = AnalyzerCorpus.Build();
        Console.WriteLine($"corpus: {corpus.Trees.Length} files, {corpus.Lines} lines");
        if (Environment.GetEnvironmentVariable("HMM_PROFILE_LOOKUP") == "1")
            for (int i = 0; i < 3; i++)
            {
                var c = corpus.Generated();
                if (i == 0)
                {
                    // Allocation of a whole off build with and without a type look-up first: is the look-up's work shared with the compiler?
                    long b0 = GC.GetTotalAllocatedBytes(true);
                    c.GetDiagnostics();
                    long b1 = GC.GetTotalAllocatedBytes(true);
                    var c2 = corpus.Generated();
                    long b2 = GC.GetTotalAllocatedBytes(true);
                    var runtime = c2.References.Select(c2.GetAssemblyOrModuleSymbol).OfType<IAssemblySymbol>().First(a => a.Name == "Hmm.Runtime");
                    runtime.GetTypeByMetadataName("Hmm.Dsl.MayBlockAttribute");
                    long b3 = GC.GetTotalAllocatedBytes(true);
                    c2.GetTypeByMetadataName("Hmm.Dsl.MayBlockAttribute");
                    long b4 = GC.GetTotalAllocatedBytes(true);
                    c2.GetDiagnostics();
                    long b5 = GC.GetTotalAllocatedBytes(true);
                    Console.WriteLine($"lookup bytes: off build alone {(b1 - b0) / 1e6:F0} MB; assembly-level look-up {(b3 - b2) / 1e6:F1} MB, then compilation-level {(b4 - b3) / 1e6:F1} MB, then the off build {(b5 - b4) / 1e6:F0} MB");
                    c = corpus.Generated();
                }
                long t0 = TimedAnalyzer.CpuNow();
                c.GetTypeByMetadataName("Hmm.Dsl.MayBlockAttribute");
                long t1 = TimedAnalyzer.CpuNow();
                c.GetTypeByMetadataName("Hmm.Dsl.AcquiresAttribute");
                c.GetTypeByMetadataName("Hmm.Runtime.Notifiers.IntervalNotifier");
                long t2 = TimedAnalyzer.CpuNow();
                c.GetDiagnostics();
                long t3 = TimedAnalyzer.CpuNow();
                Console.WriteLine($"lookup: first {(t1 - t0) / 1e6:F1} ms, next two {(t2 - t1) / 1e6:F1} ms, then GetDiagnostics {(t3 - t2) / 1e6:F0} ms cpu (this thread)");
            }
        var analyzer = AnalyzerCorpus.Analyzer();
        Console.WriteLine("analyzer: " + analyzer.GetType().Assembly.Location);
        if (Environment.GetEnvironmentVariable("HMM_PROFILE_EMIT") == "1") EmitProbe(corpus, analyzer);
        if (Environment.GetEnvironmentVariable("HMM_PROFILE_BODIES") == "1") BodyProbe(corpus);
        double off = 0, on = 0, exec = 0;
        int diagnostics = 0;
        for (int r = 0; r < rounds; r++)
        {
            long m0 = GC.GetTotalAllocatedBytes(true);
            var c0 = ProcessCpu();
            var sw = Stopwatch.StartNew();
            int n = corpus.Generated().GetDiagnostics().Length;
            double a = sw.Elapsed.TotalMilliseconds;
            long m1 = GC.GetTotalAllocatedBytes(true);
            var c1 = ProcessCpu();
            sw.Restart();
            var cwa = corpus.Generated().WithAnalyzers([analyzer], new CompilationWithAnalyzersOptions(
                new AnalyzerOptions([]), onAnalyzerException: null,
                // HMM_PROFILE_SERIAL=1: the floor's options (no concurrent analysis), so on and floor differ only in the analyzer.
                concurrentAnalysis: Environment.GetEnvironmentVariable("HMM_PROFILE_SERIAL") != "1", logAnalyzerExecutionTime: true));
            var all = cwa.GetAllDiagnosticsAsync().GetAwaiter().GetResult();
            double b = sw.Elapsed.TotalMilliseconds;
            long m2 = GC.GetTotalAllocatedBytes(true);
            var c2 = ProcessCpu();
            Console.WriteLine($"round {r}: process cpu off {c1 - c0:F0} ms, on {c2 - c1:F0} ms, ratio {(c2 - c1) / (c1 - c0):F2}");
            Console.WriteLine($"round {r}: allocated off {(m1 - m0) / 1e6:F0} MB, on {(m2 - m1) / 1e6:F0} MB, ratio {(double)(m2 - m1) / (m1 - m0):F2}");
            if (Environment.GetEnvironmentVariable("HMM_PROFILE_FLOOR") is "1" or "walk" or "symbols")
            {
                long f0 = GC.GetTotalAllocatedBytes(true);
                var fc = ProcessCpu();
                sw.Restart();
                corpus.Generated().WithAnalyzers([new EmptyOperationAnalyzer()]).GetAllDiagnosticsAsync().GetAwaiter().GetResult();
                Console.WriteLine($"round {r}: floor (an analyzer with one empty operation-block action) {sw.Elapsed.TotalMilliseconds:F0} ms, ratio {sw.Elapsed.TotalMilliseconds / a:F2}, cpu {ProcessCpu() - fc:F0} ms, ratio {(ProcessCpu() - fc) / (c1 - c0):F2}, allocated {(GC.GetTotalAllocatedBytes(true) - f0) / 1e6:F0} MB, ratio {(double)(GC.GetTotalAllocatedBytes(true) - f0) / (m1 - m0):F2}");
            }
            var t = cwa.GetAnalyzerTelemetryInfoAsync(analyzer, CancellationToken.None).GetAwaiter().GetResult();
            Console.WriteLine($"round {r}: off {a:F0} ms ({n} diagnostics), on {b:F0} ms ({all.Length}), ratio {b / a:F2}, analyzer execution {t.ExecutionTime.TotalMilliseconds:F0} ms");
            if (r == 0) continue; // warm-up
            off += a; on += b; exec += t.ExecutionTime.TotalMilliseconds; diagnostics = all.Length;
        }
        int m = Math.Max(1, rounds - 1);
        Console.WriteLine($"mean after warm-up: off {off / m:F0} ms, on {on / m:F0} ms, ratio {on / off:F2}, analyzer execution {exec / m:F0} ms, {diagnostics} diagnostics");

        if (Environment.GetEnvironmentVariable("HMM_PROFILE_NOTIMED") == "1") return;
        var timing = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        var counts = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        var timed = new TimedAnalyzer(analyzer, timing, counts);
        for (int r = 0; r < 2; r++)
        {
            timing.Clear(); counts.Clear(); TimedAnalyzer.Allocs.Clear();
            var sw = Stopwatch.StartNew();
            corpus.Generated().WithAnalyzers([timed]).GetAllDiagnosticsAsync().GetAwaiter().GetResult();
            Console.WriteLine($"timed run {r}: {sw.Elapsed.TotalMilliseconds:F0} ms");
        }
        foreach (var kv in timing.OrderByDescending(kv => kv.Value))
            Console.WriteLine($"  {kv.Value / 1e6,9:F1} ms cpu  {TimedAnalyzer.Allocs.GetValueOrDefault(kv.Key) / 1e6,8:F1} MB  {counts[kv.Key],8} calls  {kv.Key}");
    }

    /// <summary>
    /// HMM_PROFILE_EMIT=1: can a host attach analyzers to Emit through the public API, as csc attaches them
    /// (one binding feeding both)? Emits <c>cwa.Compilation</c> (the compilation carrying the analyzers' event
    /// queue), then asks <c>cwa.GetAnalyzerDiagnosticsAsync()</c>; if the second step allocates as much as a
    /// bind of its own, the analyzers did not consume the emit's events but bound a fork again.
    /// </summary>
    private static void EmitProbe(AnalyzerCorpus corpus, DiagnosticAnalyzer analyzer)
    {
        for (int r = 0; r < 2; r++)
        {
            var (emitBytes, emitCpu) = Measure(() => Emit(corpus.Generated()));
            var (bindBytes, bindCpu) = Measure(() => corpus.Generated().GetDiagnostics());
            var cwa = corpus.Generated().WithAnalyzers([analyzer]);
            var (cwaEmitBytes, cwaEmitCpu) = Measure(() => Emit(cwa.Compilation));
            var (afterBytes, afterCpu) = Measure(() => cwa.GetAnalyzerDiagnosticsAsync().GetAwaiter().GetResult());
            var (aloneBytes, aloneCpu) = Measure(() => corpus.Generated().WithAnalyzers([analyzer]).GetAnalyzerDiagnosticsAsync().GetAwaiter().GetResult());
            Console.WriteLine($"emit probe {r}: Emit {emitBytes / 1e6:F0} MB {emitCpu:F0} ms cpu; bind-only GetDiagnostics {bindBytes / 1e6:F0} MB {bindCpu:F0} ms; "
                + $"cwa.Compilation.Emit {cwaEmitBytes / 1e6:F0} MB {cwaEmitCpu:F0} ms, then cwa.GetAnalyzerDiagnosticsAsync {afterBytes / 1e6:F0} MB {afterCpu:F0} ms; "
                + $"GetAnalyzerDiagnosticsAsync on a fresh compilation {aloneBytes / 1e6:F0} MB {aloneCpu:F0} ms");
        }

        static void Emit(Compilation c)
        {
            using var pe = new MemoryStream();
            using var pdb = new MemoryStream();
            var result = c.Emit(pe, pdb, options: new Microsoft.CodeAnalysis.Emit.EmitOptions(debugInformationFormat: Microsoft.CodeAnalysis.Emit.DebugInformationFormat.PortablePdb));
            if (!result.Success) throw new InvalidOperationException("emit failed: " + result.Diagnostics.First(d => d.Severity == DiagnosticSeverity.Error));
        }

        static (long Bytes, double Cpu) Measure(Action action)
        {
            double c0 = ProcessCpu();
            long b0 = GC.GetTotalAllocatedBytes(true);
            action();
            long b1 = GC.GetTotalAllocatedBytes(true);
            return (b1 - b0, ProcessCpu() - c0);
        }
    }

    /// <summary>
    /// HMM_PROFILE_BODIES=1: what a control-flow graph per body would cost (ControlFlowGraph.Create on every body of
    /// the corpus, bytes and thread CPU), and how many bodies a syntactic pre-filter could skip soundly: a body with
    /// no invocation, object creation, member or element access, and no name other than its own parameters and locals
    /// (any other name may be a [GuardedBy] field or a range property the rules must see). Counted on the corpus and
    /// on samples/* (syntax only).
    /// </summary>
    private static void BodyProbe(AnalyzerCorpus corpus)
    {
        var c = corpus.Generated();
        int bodies = 0, skippable = 0;
        long cpu = 0, bytes = 0;
        foreach (var tree in c.SyntaxTrees)
        {
            var model = c.GetSemanticModel(tree);
            foreach (var decl in tree.GetRoot().DescendantNodes().OfType<Microsoft.CodeAnalysis.CSharp.Syntax.BaseMethodDeclarationSyntax>())
            {
                if (decl.Body == null && decl.ExpressionBody == null) continue;
                bodies++;
                if (Skippable(decl)) skippable++;
                if (model.GetOperation(decl) is not Microsoft.CodeAnalysis.Operations.IMethodBodyBaseOperation op) continue;
                long t0 = TimedAnalyzer.CpuNow(), a0 = GC.GetAllocatedBytesForCurrentThread();
                _ = op switch
                {
                    Microsoft.CodeAnalysis.Operations.IMethodBodyOperation m => Microsoft.CodeAnalysis.FlowAnalysis.ControlFlowGraph.Create(m),
                    Microsoft.CodeAnalysis.Operations.IConstructorBodyOperation k => Microsoft.CodeAnalysis.FlowAnalysis.ControlFlowGraph.Create(k),
                    _ => null,
                };
                cpu += TimedAnalyzer.CpuNow() - t0; bytes += GC.GetAllocatedBytesForCurrentThread() - a0;
            }
        }
        Console.WriteLine($"bodies probe (corpus): {bodies} method bodies; a CFG for every one costs {cpu / 1e6:F0} ms cpu, {bytes / 1e6:F0} MB; a sound syntactic pre-filter could skip {skippable} ({100.0 * skippable / Math.Max(1, bodies):F1} %)");
        var root = AppContext.BaseDirectory;
        while (root != null && !File.Exists(Path.Combine(root, "Hmm.Gen.sln"))) root = Path.GetDirectoryName(root);
        if (root == null) return;
        int sBodies = 0, sSkippable = 0;
        foreach (var file in Directory.EnumerateFiles(Path.Combine(root, "samples"), "*.cs", SearchOption.AllDirectories))
        {
            if (file.Contains("/obj/", StringComparison.Ordinal) || file.Contains("/bin/", StringComparison.Ordinal)) continue;
            var tree = Microsoft.CodeAnalysis.CSharp.CSharpSyntaxTree.ParseText(File.ReadAllText(file));
            foreach (var decl in tree.GetRoot().DescendantNodes().OfType<Microsoft.CodeAnalysis.CSharp.Syntax.BaseMethodDeclarationSyntax>())
            {
                if (decl.Body == null && decl.ExpressionBody == null) continue;
                sBodies++;
                if (Skippable(decl)) sSkippable++;
            }
        }
        Console.WriteLine($"bodies probe (samples/*, hand-written only): {sBodies} method bodies; a sound syntactic pre-filter could skip {sSkippable} ({100.0 * sSkippable / Math.Max(1, sBodies):F1} %)");

        static bool Skippable(Microsoft.CodeAnalysis.CSharp.Syntax.BaseMethodDeclarationSyntax decl)
        {
            var own = new HashSet<string>(StringComparer.Ordinal);
            foreach (var p in decl.ParameterList.Parameters) own.Add(p.Identifier.ValueText);
            SyntaxNode body = (SyntaxNode?)decl.Body ?? decl.ExpressionBody!;
            foreach (var v in body.DescendantNodes().OfType<Microsoft.CodeAnalysis.CSharp.Syntax.VariableDeclaratorSyntax>()) own.Add(v.Identifier.ValueText);
            foreach (var v in body.DescendantNodes().OfType<Microsoft.CodeAnalysis.CSharp.Syntax.SingleVariableDesignationSyntax>()) own.Add(v.Identifier.ValueText);
            if (decl is Microsoft.CodeAnalysis.CSharp.Syntax.ConstructorDeclarationSyntax { Initializer: not null }) return false;
            foreach (var n in body.DescendantNodes())
                switch (n)
                {
                    case Microsoft.CodeAnalysis.CSharp.Syntax.InvocationExpressionSyntax:
                    case Microsoft.CodeAnalysis.CSharp.Syntax.BaseObjectCreationExpressionSyntax:
                    case Microsoft.CodeAnalysis.CSharp.Syntax.MemberAccessExpressionSyntax:
                    case Microsoft.CodeAnalysis.CSharp.Syntax.ElementAccessExpressionSyntax:
                    case Microsoft.CodeAnalysis.CSharp.Syntax.ConditionalAccessExpressionSyntax:
                        return false;
                    case Microsoft.CodeAnalysis.CSharp.Syntax.IdentifierNameSyntax id when !own.Contains(id.Identifier.ValueText) && id.Parent is not Microsoft.CodeAnalysis.CSharp.Syntax.VariableDeclarationSyntax:
                        return false;
                }
            return true;
        }
    }

    private static double ProcessCpu()
    {
        GC.Collect();
        return Process.GetCurrentProcess().TotalProcessorTime.TotalMilliseconds;
    }

    /// <summary>The cost every operation analyzer pays: operation trees for every body, nothing done with them.</summary>
#pragma warning disable RS1001, RS1025, RS1026
    private sealed class EmptyOperationAnalyzer : DiagnosticAnalyzer
    {
        public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics => [];

        public override void Initialize(AnalysisContext context)
        {
            context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
            context.EnableConcurrentExecution();
            // HMM_PROFILE_FLOOR=walk: the action also walks every operation of every block. Child operations are
            // created lazily, so the empty action never materialises a tree below its root; any real rule does.
            // HMM_PROFILE_FLOOR=symbols: the walking floor plus what the HMM analyzer registers besides its block action
            // (a Field/Property symbol action reading attributes, and a compilation-end action).
            if (Environment.GetEnvironmentVariable("HMM_PROFILE_FLOOR") == "symbols")
                context.RegisterCompilationStartAction(start =>
                {
                    start.RegisterSymbolAction(s => s.Symbol.GetAttributes(), SymbolKind.Field, SymbolKind.Property);
                    start.RegisterCompilationEndAction(_ => { });
                });
            if (Environment.GetEnvironmentVariable("HMM_PROFILE_FLOOR") is "walk" or "symbols")
                context.RegisterOperationBlockAction(b =>
                {
                    foreach (var block in b.OperationBlocks)
                        foreach (var _ in Microsoft.CodeAnalysis.Operations.OperationExtensions.Descendants(block)) { }
                });
            else
                context.RegisterOperationBlockAction(_ => { });
        }
    }
#pragma warning restore RS1001, RS1025, RS1026

    /// <summary>The analyzer with its actions wrapped in stopwatches.</summary>
#pragma warning disable RS1001, RS1012, RS1025, RS1026 // a profiling wrapper, never loaded by a compiler
    private sealed class TimedAnalyzer(DiagnosticAnalyzer inner, ConcurrentDictionary<string, long> timing, ConcurrentDictionary<string, long> counts) : DiagnosticAnalyzer
    {
        public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics => inner.SupportedDiagnostics;

        public override void Initialize(AnalysisContext context)
        {
            context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
            context.RegisterCompilationStartAction(start => inner.Initialize(new Root(start, this)));
        }

        internal Action<T> Wrap<T>(Action<T> action, string? suffix = null)
        {
            var m = action.Method;
            var t = m.DeclaringType!;
            while (t.DeclaringType != null && t.Name.StartsWith('<')) t = t.DeclaringType;
            string key = t.Name + "." + m.Name + (suffix == null ? "" : " " + suffix);
            return x =>
            {
                long s = CpuNow(), a0 = GC.GetAllocatedBytesForCurrentThread();
                try { action(x); }
                finally
                {
                    long d = CpuNow() - s, da = GC.GetAllocatedBytesForCurrentThread() - a0;
                    Allocs.AddOrUpdate(key, da, (_, v) => v + da);
                    timing.AddOrUpdate(key, d, (_, v) => v + d);
                    counts.AddOrUpdate(key, 1, (_, v) => v + 1);
                }
            };
        }

        [StructLayout(LayoutKind.Sequential)]
        private struct TimeSpec
        {
            public long Sec;
            public long Nsec;
        }

        [DllImport("libc", EntryPoint = "clock_gettime")]
        private static extern int ClockGetTime(int clock, out TimeSpec time);

        internal static readonly ConcurrentDictionary<string, long> Allocs = new(StringComparer.Ordinal);

        internal static long CpuNow()
        {
            // CLOCK_THREAD_CPUTIME_ID: this thread's CPU time, so a loaded host does not inflate the figures.
            ClockGetTime(3, out var t);
            return t.Sec * 1_000_000_000L + t.Nsec;
        }

        /// <summary>The analyzer's Initialize sees this: its compilation start action runs on the real start context, wrapped.</summary>
        private sealed class Root(CompilationStartAnalysisContext real, TimedAnalyzer owner) : AnalysisContext
        {
            public override void RegisterCompilationStartAction(Action<CompilationStartAnalysisContext> action) => owner.Wrap(action)(new Start(real, owner));
            public override void EnableConcurrentExecution() { }
            public override void ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags analysisMode) { }
            public override void RegisterCompilationAction(Action<CompilationAnalysisContext> action) => throw new NotSupportedException();
            public override void RegisterSemanticModelAction(Action<SemanticModelAnalysisContext> action) => throw new NotSupportedException();
            public override void RegisterSymbolAction(Action<SymbolAnalysisContext> action, ImmutableArray<SymbolKind> symbolKinds) => throw new NotSupportedException();
            public override void RegisterCodeBlockStartAction<TLanguageKindEnum>(Action<CodeBlockStartAnalysisContext<TLanguageKindEnum>> action) => throw new NotSupportedException();
            public override void RegisterCodeBlockAction(Action<CodeBlockAnalysisContext> action) => throw new NotSupportedException();
            public override void RegisterSyntaxTreeAction(Action<SyntaxTreeAnalysisContext> action) => throw new NotSupportedException();
            public override void RegisterSyntaxNodeAction<TLanguageKindEnum>(Action<SyntaxNodeAnalysisContext> action, ImmutableArray<TLanguageKindEnum> syntaxKinds) => throw new NotSupportedException();
        }

        private sealed class Start(CompilationStartAnalysisContext real, TimedAnalyzer owner)
            : CompilationStartAnalysisContext(real.Compilation, real.Options, real.CancellationToken)
        {
            public override void RegisterCompilationEndAction(Action<CompilationAnalysisContext> action) => real.RegisterCompilationEndAction(owner.Wrap(action, "(end)"));
            public override void RegisterSemanticModelAction(Action<SemanticModelAnalysisContext> action) => real.RegisterSemanticModelAction(owner.Wrap(action));
            public override void RegisterSymbolAction(Action<SymbolAnalysisContext> action, ImmutableArray<SymbolKind> symbolKinds) => real.RegisterSymbolAction(owner.Wrap(action), symbolKinds);
            public override void RegisterSymbolStartAction(Action<SymbolStartAnalysisContext> action, SymbolKind symbolKind) => throw new NotSupportedException();
            public override void RegisterCodeBlockStartAction<TLanguageKindEnum>(Action<CodeBlockStartAnalysisContext<TLanguageKindEnum>> action) => throw new NotSupportedException();
            public override void RegisterCodeBlockAction(Action<CodeBlockAnalysisContext> action) => real.RegisterCodeBlockAction(owner.Wrap(action));
            public override void RegisterSyntaxTreeAction(Action<SyntaxTreeAnalysisContext> action) => real.RegisterSyntaxTreeAction(owner.Wrap(action));
            public override void RegisterSyntaxNodeAction<TLanguageKindEnum>(Action<SyntaxNodeAnalysisContext> action, ImmutableArray<TLanguageKindEnum> syntaxKinds) => real.RegisterSyntaxNodeAction(owner.Wrap(action), syntaxKinds);
            public override void RegisterOperationBlockStartAction(Action<OperationBlockStartAnalysisContext> action) => throw new NotSupportedException();
            public override void RegisterOperationBlockAction(Action<OperationBlockAnalysisContext> action) => real.RegisterOperationBlockAction(owner.Wrap(action));
            public override void RegisterOperationAction(Action<OperationAnalysisContext> action, ImmutableArray<OperationKind> operationKinds)
                => real.RegisterOperationAction(owner.Wrap(action, "[" + string.Join(",", operationKinds) + "]"), operationKinds);
        }
    }
#pragma warning restore RS1001, RS1012, RS1025, RS1026
}
