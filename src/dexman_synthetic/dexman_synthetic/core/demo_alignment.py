"""Put a synthetic ground-truth demonstration into the robot world, as perception would (paper B.4).

A synthetic case's ground truth (``dexman_synthetic.core.ground_truth``) lives in the generator's
own world: z up, table top centred above the origin, the person on the table's -y side with the
pelvis at about (0, -0.65, 0.54) m. Retargeting expects the robot world instead (the G1 at the
origin facing +y, pelvis at (0, 0, 0.793) m). Perception gets there with
``dexman_perception.core.scene_alignment.align_scene`` from camera-frame measurements on the first
frame; :func:`align_ground_truth` feeds it the same inputs taken from the ground truth, expressed
in the case's camera frame:

- table points: a grid over the table top rectangle (``table_point``, ``table_normal``,
  ``table_extents``), the stand-in for the depth-lifted table mask;
- left / right hip and pelvis: ``gt.hips[0]`` and ``gt.pelvis_poses[0]`` (the stand-in for the
  4D-Humans joints);
- entity points (the y shift into reach): every object's initial position and the hand keypoints
  of the frames where the hand is present.

The result is the rigid transform ``T_robot_gt = T_world_camera(aligned) @ T_camera_gtworld``;
:func:`transform_demonstration` applies it to every pose, point and the table of a
``Demonstration`` (``from_ground_truth`` of the case), and :func:`demonstration_from_ground_truth`
does both. Nothing here imports rclpy.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from dexman_common.artefacts.demonstration import Demonstration, DemoObject
from dexman_perception.core import scene_alignment as sa

TABLE_GRID = 9          # table points per side of the grid (81 points)


def _table_points_world(gt, n: int = TABLE_GRID) -> np.ndarray:
    """(n*n, 3) points on the table top rectangle, world (generator frame)."""
    nrm = np.asarray(gt.table_normal, float)
    nrm = nrm / np.linalg.norm(nrm)
    # two horizontal axes of the table top: the world x projected on the plane, then n x u
    u = np.array([1.0, 0.0, 0.0]) - nrm[0] * nrm
    if np.linalg.norm(u) < 1e-6:
        u = np.array([0.0, 1.0, 0.0]) - nrm[1] * nrm
    u /= np.linalg.norm(u)
    v = np.cross(nrm, u)
    ex, ey = (0.5 * float(e) for e in np.asarray(gt.table_extents, float))
    a, b = np.meshgrid(np.linspace(-ex, ex, n), np.linspace(-ey, ey, n), indexing='ij')
    return np.asarray(gt.table_point, float) + a.reshape(-1, 1) * u + b.reshape(-1, 1) * v


@dataclasses.dataclass(frozen=True)
class GroundTruthAlignment:
    T_robot_gt: np.ndarray                 # (4, 4) generator world -> robot world
    alignment: sa.SceneAlignment           # align_scene's result (camera_optical -> robot world)


def align_ground_truth(gt, *, robot_pelvis=sa.ROBOT_PELVIS_DEFAULT,
                       reach: sa.ReachBox | sa.ReachSphere | None = sa.ReachBox()) -> GroundTruthAlignment:
    """scene_alignment.align_scene on the ground truth's first frame, in its camera frame."""
    T_cw = np.linalg.inv(np.asarray(gt.T_world_camera, float))      # camera <- generator world
    to_cam = lambda P: sa.transform_points(T_cw, P)                 # noqa: E731
    hips = np.asarray(gt.hips, float)[0]
    pelvis = np.asarray(gt.pelvis_poses, float)[0, :3, 3]
    kp = np.asarray(gt.hand_keypoints, float)                       # (2, N, 21, 3)
    present = np.asarray(gt.hand_present, bool)
    entities = np.concatenate([np.asarray(gt.object_poses, float)[:, 0, :3, 3].reshape(-1, 3),
                               kp[present].reshape(-1, 3)])
    al = sa.align_scene(to_cam(_table_points_world(gt)), to_cam(hips[0]), to_cam(hips[1]),
                        to_cam(pelvis), entity_points_camera=to_cam(entities),
                        robot_pelvis=robot_pelvis, reach=reach)
    return GroundTruthAlignment(T_robot_gt=al.T_world_camera @ T_cw, alignment=al)


def transform_demonstration(demo: Demonstration, T_new_old: np.ndarray) -> Demonstration:
    """A copy of ``demo`` with every world quantity mapped by the rigid transform ``T_new_old``
    (object and wrist poses, hand keypoints, camera pose, table point and normal)."""
    T = np.asarray(T_new_old, float)
    R, t = T[:3, :3], T[:3, 3]
    with np.errstate(invalid='ignore'):
        return dataclasses.replace(
            demo,
            object_poses=T @ np.asarray(demo.object_poses, float),
            wrist_poses=T @ np.asarray(demo.wrist_poses, float),
            hand_keypoints=np.asarray(demo.hand_keypoints, float) @ R.T + t,
            T_world_camera=T @ np.asarray(demo.T_world_camera, float),
            table_point=R @ np.asarray(demo.table_point, float) + t,
            table_normal=R @ np.asarray(demo.table_normal, float),
            provenance={**demo.provenance, 'aligned_to_robot_world': T.tolist()})


def demonstration_from_ground_truth(gt, demonstration_id: str | None = None, **align_kw):
    """(Demonstration in the robot world, meshes, GroundTruthAlignment) of a synthetic case:
    ``from_ground_truth`` then :func:`align_ground_truth` / :func:`transform_demonstration`."""
    demo, meshes = from_ground_truth(gt, demonstration_id)
    ga = align_ground_truth(gt, **align_kw)
    out = transform_demonstration(demo, ga.T_robot_gt)
    out.provenance['scene_alignment'] = {
        'y_shift_m': ga.alignment.y_shift, 'reach_fits': ga.alignment.reach_fits,
        'reach_note': ga.alignment.reach_note, 'table_height_m': ga.alignment.table_height,
        'facing_angle_rad': ga.alignment.facing_angle}
    return out, meshes, ga


def from_ground_truth(gt, demonstration_id: str | None = None) -> tuple[Demonstration, dict[str, Any]]:
    """The exact demonstration of a synthetic case (dexman_synthetic.core.ground_truth.GroundTruth),
    with its meshes, for scoring downstream stages on perfect inputs. Frames dropped from the bag
    stay in, marked valid: the ground truth knows them."""
    n = gt.n_frames
    demo = Demonstration(
        demonstration_id=demonstration_id or f'gt_{gt.case_id}', fps=gt.fps,
        stamps_ns=np.asarray(gt.stamps_ns, np.int64),
        objects=[DemoObject(id=o.id, label=o.label, mesh_file=f'meshes/{o.id}.obj') for o in gt.objects],
        object_poses=np.asarray(gt.object_poses, float), object_valid=np.ones((len(gt.objects), n), bool),
        hand_keypoints=np.asarray(gt.hand_keypoints, float), hand_valid=np.asarray(gt.hand_present, bool),
        wrist_poses=np.asarray(gt.wrist_poses, float), T_world_camera=np.asarray(gt.T_world_camera, float),
        K=np.asarray(gt.K, float), table_point=np.asarray(gt.table_point, float),
        table_normal=np.asarray(gt.table_normal, float),
        source_uri=str(gt.root / 'bag') if gt.root is not None else '',
        provenance={'source': 'ground_truth', 'case_id': gt.case_id, 'task': gt.task, 'seed': gt.seed})
    meshes = {o.id: gt.load_mesh(o.id) for o in gt.objects} if gt.root is not None else {}
    return demo, meshes
