"""Camera health: block stability of the outgoing image, freeze, cover and sensor defects."""
