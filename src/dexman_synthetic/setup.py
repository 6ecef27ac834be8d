from setuptools import find_packages, setup

package_name = 'dexman_synthetic'

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
    description='Synthetic demonstrations with exact ground truth, rendered with MuJoCo, and the benchmark suite.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'dexman_synth = dexman_synthetic.cli:main',
            'score_poses = dexman_synthetic.score_poses_cli:main',
        ],
    },
)
