"""Residual PPO skill training in simulation (MuJoCo default) and the policy node."""
