"""Retargeting human hands onto a Unitree G1 with two Shadow hands: wrist IK, finger MLP, contact priors, stable placement."""
