"""Generate one synthetic demonstration: scene sampling, task script, rendering, bag + ground truth.

Deterministic per (task, object shape, seed): every random choice of the scene comes from one
numpy Generator seeded by a SHA-256 of those three values; degradations use a second, separate
stream, so turning them on never changes the scene. Rendering options (size, fps, duration) do
not change the scene either, except that the camera placement is checked against the image.
"""
from __future__ import annotations

import dataclasses
import pathlib
import sys
import time

import numpy as np

from . import ground_truth as gtm
from .bag_writer import BagWriter
from .body_model import make_body
from .camera import sample_camera
from .degradations import DegradationConfig, Degrader
from .grasp import GraspFailed
from .hand_model import LEFT, RIGHT, HandShape, world_keypoints
from .objects import SHAPES, make_object
from .scene_builder import Scene, TableSpec
from .tasks import DEFAULT_DURATION, TASKS, Layout, TaskError, build, object_size
from .transforms import apply_T, make_rng

GENERATOR_VERSION = 'dexman_synthetic/1'
STAMP0_NS = 1_700_000_000 * 10**9


@dataclasses.dataclass
class GenerateOptions:
    task: str
    shape: str
    seed: int
    width: int = 640
    height: int = 480
    fps: float = 30.0
    duration: float | None = None        # seconds; default per task (3.5-4 s)
    depth: bool = False                  # publish /camera/depth/image_raw
    posture: str | None = None           # seated | standing | None (random per seed)
    degrade: DegradationConfig = dataclasses.field(default_factory=DegradationConfig)
    case_id: str | None = None

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f'unknown task {self.task!r} (choose from {", ".join(TASKS)})')
        if self.shape not in SHAPES:
            raise ValueError(f'unknown object {self.shape!r} (choose from {", ".join(SHAPES)})')
        if self.seed < 0:
            raise ValueError(f'--seed must be >= 0, got {self.seed}')
        if not (16 <= self.width <= 4096 and 16 <= self.height <= 4096):
            raise ValueError(f'image size {self.width}x{self.height} out of range (16..4096)')
        if not 1.0 <= self.fps <= 240.0:
            raise ValueError(f'--fps must be in [1, 240], got {self.fps}')
        if self.duration is not None and not 0.1 <= self.duration <= 60.0:
            raise ValueError(f'--duration must be in [0.1, 60] s, got {self.duration}')
        if self.posture not in (None, 'seated', 'standing'):
            raise ValueError(f'--posture must be seated or standing, got {self.posture!r}')
        self.degrade.validate()
        if (self.degrade.depth_noise or self.degrade.depth_holes or self.degrade.relative_chunk) and not self.depth:
            raise ValueError('depth degradations need --depth')

    @property
    def n_frames(self) -> int:
        d = self.duration if self.duration is not None else DEFAULT_DURATION[self.task]
        return max(2, int(round(d * self.fps)))


@dataclasses.dataclass
class Demo:
    """Everything about one demonstration before rendering."""
    opts: GenerateOptions
    layout: Layout
    table: TableSpec
    result: object
    stamps_ns: np.ndarray
    wrist_T: np.ndarray
    poses: list
    keypoints: np.ndarray
    elbows: np.ndarray
    object_T: np.ndarray
    grasped: np.ndarray
    contacts: np.ndarray
    camera: object
    info: dict


def table_colour(rng) -> np.ndarray:
    """Wood tones most of the time, otherwise a neutral white, grey or dark top."""
    r = rng.random()
    if r < 0.6:
        c = np.array([0.55, 0.40, 0.26]) * rng.uniform(0.7, 1.3)
    elif r < 0.8:
        c = np.full(3, rng.uniform(0.75, 0.9)) * np.array([1.0, 0.98, 0.94])
    else:
        c = np.full(3, rng.uniform(0.2, 0.5))
    return np.clip(c, 0, 1)


def plan(opts: GenerateOptions) -> Demo:
    """Sample the scene and script the task (no rendering)."""
    opts.validate()
    rng = make_rng(GENERATOR_VERSION, opts.task, opts.shape, opts.seed)
    n = opts.n_frames
    duration = n / opts.fps
    last_err = None
    for attempt in range(8):
        posture = opts.posture or ('seated' if rng.random() < 0.7 else 'standing')
        th = rng.uniform(0.72, 0.76) if posture == 'seated' else rng.uniform(0.86, 0.92)
        tx, ty = rng.uniform(1.0, 1.4), rng.uniform(0.7, 0.9)
        table = TableSpec((tx, ty), th, 0.04, (*table_colour(rng), 1.0))
        edge = -ty / 2
        scale = rng.uniform(0.95, 1.05)
        body = make_body(rng, posture, th, edge, scale)
        hand = HandShape(scale)
        obj = make_object(opts.shape, object_size(opts.task, opts.shape), rng)
        layout = Layout(th, edge, body, hand, obj)
        try:
            res = build(opts.task, layout, rng)
            sm = res.script.sample(n, opts.fps, duration)
            elbows = np.zeros((2, n, 3))
            for h in (LEFT, RIGHT):
                prev = None
                for k in range(n):
                    prev = elbows[h, k] = body.elbow(h, sm.wrist_T[h, k, :3, 3], prev)
        except (TaskError, GraspFailed, ValueError) as e:
            last_err = e
            continue
        break
    else:
        raise RuntimeError(f'could not script {opts.task} with a {opts.shape} for seed {opts.seed}: {last_err}')
    kps = np.zeros((2, n, 21, 3))
    for h in (LEFT, RIGHT):
        for k in range(n):
            kps[h, k] = world_keypoints(hand, sm.poses[h][k], h, sm.wrist_T[h, k])
    corners = np.array([[x, y, z] for x in obj.mesh.bounds[:, 0] for y in obj.mesh.bounds[:, 1]
                        for z in obj.mesh.bounds[:, 2]])
    obj_pts = np.concatenate([apply_T(T, corners) for T in sm.object_T[0]])
    must = np.concatenate([kps.reshape(-1, 3), obj_pts, body.hips, body.shoulders])
    target = 0.5 * (must.min(0) + must.max(0))
    cam = sample_camera(rng, opts.width, opts.height, body.T_world_pelvis[:2, 3], th, must, target)
    stamps = STAMP0_NS + np.round(np.arange(n) * 1e9 / opts.fps).astype(np.int64)
    info = dict(generator=GENERATOR_VERSION, posture=posture, person_scale=float(scale),
                object_label=obj.label, object_rgba=list(obj.rgba), object_size_class=object_size(opts.task, opts.shape),
                camera=cam.info, task=res.info, attempts=attempt + 1, duration_s=duration,
                object_params={k: (list(v) if isinstance(v, tuple) else v) for k, v in obj.params.items()})
    return Demo(opts, layout, table, res, stamps, sm.wrist_T, sm.poses, kps, elbows, sm.object_T,
                sm.grasped, sm.contacts, cam, info)


def generate(opts: GenerateOptions, case_dir: str | pathlib.Path, progress: bool = True) -> dict:
    """Render one case into `case_dir` (bag/ and ground_truth/). Returns a summary."""
    from tqdm import tqdm

    from .renderer import SceneRenderer
    t_start = time.perf_counter()
    demo = plan(opts)
    t_plan = time.perf_counter() - t_start
    case_dir = pathlib.Path(case_dir).resolve()
    case_dir.mkdir(parents=True, exist_ok=True)
    case_id = opts.case_id or case_dir.name
    L, n = demo.layout, len(demo.stamps_ns)
    drng = make_rng(GENERATOR_VERSION, 'degrade', opts.task, opts.shape, opts.seed)
    deg = Degrader(opts.degrade, n, drng)
    obj_ids, labels = ['object_0'], [L.obj.label]
    mesh_file = 'meshes/object_0.obj'
    uris = [(case_dir / 'ground_truth' / mesh_file).as_uri()]
    K = demo.camera.K
    T_wc = demo.camera.T_world_optical
    scene = Scene(demo.table, L.body, L.hand, [L.obj], demo.camera, make_rng(GENERATOR_VERSION, 'look', opts.task, opts.shape, opts.seed))
    depth_gt = np.zeros((n, opts.height, opts.width), np.float16)
    labels_gt = np.zeros((n, opts.height, opts.width), np.uint8)
    writer = BagWriter(case_dir / 'bag', with_depth=opts.depth)
    writer.open()
    t_render = 0.0
    try:
        writer.write_static(int(demo.stamps_ns[0]), T_wc)
        with SceneRenderer(scene) as rend:
            for k in tqdm(range(n), desc=case_id, file=sys.stderr, disable=not progress, leave=False):
                scene.set_frame(demo.wrist_T[:, k], [demo.poses[0][k], demo.poses[1][k]], demo.elbows[:, k],
                                demo.object_T[:, k])
                t0 = time.perf_counter()
                rgb, dep, lab = rend.render(depth=True, labels=True)
                t_render += time.perf_counter() - t0
                depth_gt[k], labels_gt[k] = dep, lab
                stamp = int(demo.stamps_ns[k])
                writer.write_truth(stamp, demo.wrist_T[:, k], demo.keypoints[:, k], np.ones(2, bool), obj_ids, labels,
                                   demo.object_T[:, k], uris)
                if deg.frame_in_bag[k]:
                    writer.write_camera(stamp, rgb, K, deg.depth(k, dep) if opts.depth else None)
    except BaseException:
        writer.abort()
        raise
    pelvis = np.repeat(L.body.T_world_pelvis[None], n, axis=0)
    hips = np.repeat(L.body.hips[None], n, axis=0)
    degradations = dict(deg.record)
    degradations['depth_published'] = bool(opts.depth)
    gt = gtm.GroundTruth(
        case_id=case_id, task=opts.task, seed=int(opts.seed), fps=float(opts.fps), width=opts.width,
        height=opts.height, K=K, T_world_camera=T_wc, table_point=np.array([0.0, 0.0, L.table_h]),
        table_normal=np.array([0.0, 0.0, 1.0]), table_extents=np.array(demo.table.extents),
        objects=[gtm.ObjectInfo(id=obj_ids[0], label=L.obj.label, shape=L.obj.shape, mesh_file=mesh_file,
                                symmetry=L.obj.symmetry, extents=L.obj.extents, mass=L.obj.mass)],
        stamps_ns=demo.stamps_ns, object_poses=demo.object_T, hand_keypoints=demo.keypoints,
        hand_present=np.ones((2, n), bool), wrist_poses=demo.wrist_T, pelvis_poses=pelvis, hips=hips,
        grasped=demo.grasped, frame_in_bag=deg.frame_in_bag, degradations=degradations,
        finger_contacts=demo.contacts, info=demo.info)
    t0 = time.perf_counter()
    try:
        gtm.save(gt, case_dir, {obj_ids[0]: L.obj.mesh}, depth_gt, labels_gt)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    t_write = time.perf_counter() - t0
    total = time.perf_counter() - t_start
    bag_bytes = sum(p.stat().st_size for p in (case_dir / 'bag').rglob('*') if p.is_file())
    return dict(case_id=case_id, case_dir=str(case_dir), frames=n, frames_in_bag=int(deg.frame_in_bag.sum()),
                seconds=round(total, 2), plan_s=round(t_plan, 2), render_s=round(t_render, 2),
                write_s=round(t_write, 2), bag_mb=round(bag_bytes / 2**20, 2), info=demo.info)
