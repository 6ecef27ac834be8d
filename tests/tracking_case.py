"""A small synthetic RGB-D clip for the CPU tracking tests (320x240, 10 fps, 1.5 s, pick-and-place
of a can), with the hands as depth maps drawn from the ground-truth keypoints (the stand-in for
the hands stage)."""
from __future__ import annotations

import pathlib
import shutil
import tempfile

import numpy as np

from dexman_perception.core.hand_occlusion import hand_depth_map


def tracking_case(case_id: str):
    """Generator for a module-scoped fixture: yields dict(gt, rgb, dep, labels, hands, T, mesh)."""
    from dexman_synthetic.core import ground_truth as gtio
    from dexman_synthetic.core.bag_reader import image_array, read_topics
    from dexman_synthetic.core.generate import GenerateOptions, generate
    root = pathlib.Path(tempfile.mkdtemp(prefix=f'dexman_{case_id}_'))
    try:
        generate(GenerateOptions('pick_place', 'cylinder', 0, width=320, height=240, fps=10.0,
                                 duration=1.5, depth=True, case_id=case_id), root / 'c', progress=False)
        gt = gtio.load(root / 'c')
        bag = root / 'c' / 'bag'
        rgb = [image_array(m).copy() for _, _, m in read_topics(bag, ['/camera/image_raw'])]
        dep = [image_array(m).copy() for _, _, m in read_topics(bag, ['/camera/depth/image_raw'])]
        _, labels = gt.load_scene()
        Tcw = gt.T_camera_world
        hands = []
        for k in range(gt.n_frames):
            kp = gt.hand_keypoints[:, k] @ Tcw[:3, :3].T + Tcw[:3, 3]
            m = hand_depth_map(kp, gt.hand_present[:, k], gt.K, (gt.height, gt.width))
            hands.append(np.full((gt.height, gt.width), np.inf, np.float32) if m is None else m)
        yield dict(gt=gt, rgb=rgb, dep=dep, labels=labels, hands=hands,
                   T=gt.object_poses_in_camera()[0], mesh=gt.load_mesh('object_0'))
    finally:
        shutil.rmtree(root, ignore_errors=True)
