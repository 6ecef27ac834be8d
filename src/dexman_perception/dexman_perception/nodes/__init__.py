"""Thin ROS 2 node shells: convert messages and call the core."""
