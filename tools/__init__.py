"""Development scripts, grouped: models/ (building the shipped models), bench/ (benchmarks and fault trials), eval/ (evaluation)."""
