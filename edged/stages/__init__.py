"""The per-frame stages (detect, track, select, privacy, health, package) and the typed bundle they fill."""
