from setuptools import find_packages, setup

package_name = 'dexman_common'

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
    description='DexMan-ROS base package: artefact schemas, geometry, atomic I/O, bag reading, image codec, config dataclasses; ROS helpers in dexman_common.ros.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
        ],
    },
)
