"""Thin ROS 2 node shells over the package's ROS-free modules."""
