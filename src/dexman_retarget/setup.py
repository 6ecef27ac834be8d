from setuptools import find_packages, setup

package_name = 'dexman_retarget'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={'dexman_retarget': ['models/*.pt']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='DexMan-ROS developers',
    maintainer_email='dev@dexman-ros.org',
    description='Retargeting human hands onto a Unitree G1 with two Shadow hands: wrist IK, finger MLP, contact priors, stable placement.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'retarget_node = dexman_retarget.nodes.retarget_node:main',
            'retarget = dexman_retarget.retarget_cli:main',
            'train_finger_mlp = dexman_retarget.train_finger_mlp_cli:main',
        ],
    },
)
