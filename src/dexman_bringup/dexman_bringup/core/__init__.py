"""ROS-free core: algorithms, data types and I/O. Never imports rclpy."""
