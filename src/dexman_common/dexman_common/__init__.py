"""DexMan-ROS base package: artefact schemas, geometry, atomic I/O, bag reading and image codec,
camera projection (camera), stamp conversion (stamps), report helpers (report), configuration
dataclasses. ROS-free except the ``dexman_common.ros`` submodule."""
