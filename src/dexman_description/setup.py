from setuptools import find_packages, setup

package_name = 'dexman_description'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='DexMan-ROS developers',
    maintainer_email='dev@dexman-ros.org',
    description='Unitree G1 + two Shadow hands: the robot model (MJCF + URDF) assembled from PyPI asset packages.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'build_robot = dexman_description.build_robot_cli:main',
            'robot_state_publisher_py = dexman_description.nodes.robot_state_publisher:main',
        ],
    },
)
