from setuptools import find_packages, setup

package_name = 'dexman_perception'

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
    description='Perception: video/bag input, segmentation, depth, hands, object meshes and 6D tracking, scene alignment, pose metrics.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'bag_player = dexman_perception.nodes.bag_player:main',
            'frame_probe = dexman_perception.nodes.frame_probe:main',
            'video_to_bag = dexman_perception.video_to_bag_cli:main',
            
            'depth_node = dexman_perception.nodes.depth_node:main',
            'hands_node = dexman_perception.nodes.hands_node:main',
            'body_node = dexman_perception.nodes.body_node:main',
            'segmentation_node = dexman_perception.nodes.segmentation_node:main',
            'mesh_node = dexman_perception.nodes.mesh_node:main',
            'tracker_node = dexman_perception.nodes.tracker_node:main',
            'scene_node = dexman_perception.nodes.scene_node:main',
            'demo_assembler = dexman_perception.nodes.demo_assembler:main',
        ],
    },
)
