"""Launch files runner (a subset of the ROS 2 XML launch frontend) for environments without ros2 launch, and graph-level tools."""
