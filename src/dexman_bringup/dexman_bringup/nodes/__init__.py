"""Thin ROS 2 node shells over dexman_bringup.core: graph-level tools (recorder, Foxglove bridge)."""
