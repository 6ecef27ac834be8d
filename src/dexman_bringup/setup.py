import glob
import os

from setuptools import find_packages, setup

package_name = 'dexman_bringup'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        # the repository's launch/ and config/, so that `ros2 launch dexman_bringup dexman.launch.xml`
        # works too (the files use $(dirname)/../config, which holds in both places)
        ('share/' + package_name + '/launch', sorted(glob.glob(os.path.join('..', '..', 'launch', '*.launch.xml')))),
        ('share/' + package_name + '/config', sorted(glob.glob(os.path.join('..', '..', 'config', '*.*')))),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='DexMan-ROS developers',
    maintainer_email='dev@dexman-ros.org',
    description='Launch files runner (a subset of the ROS 2 XML launch frontend) for environments without ros2 launch, and graph-level tools.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'dexman_launch = dexman_bringup.launch_cli:main',
            'topic_recorder = dexman_bringup.nodes.topic_recorder:main',
            'foxglove_bridge = dexman_bringup.nodes.foxglove_bridge:main',
        ],
    },
)
