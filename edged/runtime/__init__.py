"""The running daemon: capture and stage tasks, exposure lock, sinks, stats, preflight, systemd notify."""
