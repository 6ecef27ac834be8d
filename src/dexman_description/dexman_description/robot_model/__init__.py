"""The Unitree G1 + two Shadow hands robot model (ROS-free).

Assembled with ``mujoco.MjSpec`` from assets shipped in PyPI packages (see ``assets``), built by
``python -m dexman_description.build_robot_cli --out DIR`` or :func:`build`. See docs/robot_model.md.
"""
from .assemble import (ARM_JOINT_STEMS, FINGERTIP_SITES, HAND_ACTUATED_JOINTS, HAND_COUPLED_JOINTS,
                       HAND_FRICTION, HAND_JOINTS, HAND_PREFIX, MOUNT_OFFSET, MOUNT_ROT, PALM_BODY,
                       WAIST_JOINTS, WRIST_BODY, Assembly, BuildOptions, arm_joints, assemble,
                       build_model, fingertip_sites, hand_actuated_joints, hand_joints, joint_groups)
from .assets import AssetsNotFoundError, assets_available
from .build import MANIFEST_NAME, URDF_NAME, XML_NAME, BuildResult, build, load_model, manifest_sha256

__all__ = [
    'ARM_JOINT_STEMS', 'FINGERTIP_SITES', 'HAND_ACTUATED_JOINTS', 'HAND_COUPLED_JOINTS',
    'HAND_FRICTION', 'HAND_JOINTS', 'HAND_PREFIX', 'MOUNT_OFFSET', 'MOUNT_ROT', 'PALM_BODY',
    'WAIST_JOINTS', 'WRIST_BODY', 'Assembly', 'BuildOptions', 'arm_joints', 'assemble',
    'build_model', 'fingertip_sites', 'hand_actuated_joints', 'hand_joints', 'joint_groups',
    'AssetsNotFoundError', 'assets_available', 'MANIFEST_NAME', 'URDF_NAME', 'XML_NAME',
    'BuildResult', 'build', 'load_model',
]
