using Hmm.Samples.HmmSim;

return Cli.Run(args);
