"""The way out: signed envelopes, destination names, the persistent outbox and the MQTT uplinks."""
