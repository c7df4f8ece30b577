"""Reconstruction likelihoods and divergences shared by every variant."""
