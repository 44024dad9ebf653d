"""Outgoing packaging: the selected image and the frame's events as outbox envelopes."""
