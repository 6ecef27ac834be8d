"""The only rclpy-importing part of dexman_common: QoS profiles, documented parameters, the node main runner."""
