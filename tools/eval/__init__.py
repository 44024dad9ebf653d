"""Evaluation scripts on real images and on synthetic scenes."""
