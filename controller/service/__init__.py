"""What the CLI, the BatchCompute API and the console call: validation and typed views of environments."""
