"""wavecut's command line (typer); the library lives in gpusim, planner and validation."""
