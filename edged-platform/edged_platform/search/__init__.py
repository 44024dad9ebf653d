"""Forensic search on the functional platform: index sealed records, find plates and faces, restore hits."""
