"""wavecut planner: channel-pruning plans under a latency budget."""
