"""Structured-output tasks built on the datasets (e.g. MNIST quadrant completion for the CVAE)."""
