"""Functional/operations platform side: message store and tools that use it."""
