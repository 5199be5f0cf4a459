"""Data: examples, images, tag schemes, statistics and the synthetic dataset."""
