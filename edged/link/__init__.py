"""The way out: signed envelopes, sealed records, destination names, the persistent outbox and the MQTT uplinks."""
