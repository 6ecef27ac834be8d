from setuptools import find_packages, setup

package_name = 'dexman_rl'

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
    description='Residual PPO skill training in simulation (MuJoCo default) and the policy node.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'train = dexman_rl.train_cli:main',
            'evaluate = dexman_rl.evaluate_cli:main',
            'trainer_node = dexman_rl.nodes.trainer_node:main',
            'policy_node = dexman_rl.nodes.policy_node:main',
        ],
    },
)
