"""Shared test setup: a private ROS domain and log dir per test session, and the shared/ data."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / 'shared'

# A distinct ROS domain per pytest process, so parallel runs (a developer and CI, two shells)
# never see each other's nodes. Discovery stays on loopback (env.sh sets the range and profile).
# env.sh exports ROS_DOMAIN_ID (0 by default), so the domain is always chosen here; set
# DEXMAN_TEST_ROS_DOMAIN_ID to pin it.
os.environ['ROS_DOMAIN_ID'] = os.environ.get('DEXMAN_TEST_ROS_DOMAIN_ID', str(1 + os.getpid() % 100))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_LOG_DIR', str(ROOT / 'log' / 'ros-tests'))


@pytest.fixture(scope='session')
def shared_videos():
    """The paper's input clips in ../shared/data/videos (present in CI and the dev sandbox)."""
    d = SHARED / 'data' / 'videos'
    if not d.is_dir() or not any(d.glob('*.mp4')):
        pytest.skip(f'no shared clips at {d}: the shared/ folder beside the checkout is absent, '
                    'so the real-video tests cannot run')
    return sorted(d.glob('*.mp4'))
