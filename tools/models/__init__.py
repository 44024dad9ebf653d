"""Scripts that build and check the shipped models (build-time only; tensorflow lives here, never on the device)."""
