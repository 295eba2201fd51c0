using Flint;

return Cli.Run(args);
