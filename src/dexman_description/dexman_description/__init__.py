"""The robot shared by retargeting, RL and the policy node: Unitree G1 + two Shadow hands (MJCF + URDF)."""
