"""DexMan-ROS base package: artefact schemas, geometry, atomic I/O, bag reading and image codec,
camera helpers, configuration dataclasses. ROS-free except the ``dexman_common.ros`` submodule."""
