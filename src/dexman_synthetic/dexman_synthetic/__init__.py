"""Synthetic demonstrations with exact ground truth, rendered with MuJoCo, and the benchmark suite."""
