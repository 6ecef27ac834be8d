"""The MediaPipe CPU defaults on real frames (shared clips) and their model bundles.

Needs mediapipe 1.2.x and the bundles built by
`python -m dexman_perception.core.backends.mediapipe_models --fetch`; without them the real-frame
tests skip with the reason (the bundle-recipe tests run regardless)."""
import hashlib
import io
import time
import zipfile

import cv2
import numpy as np
import pytest

from dexman_perception.core.backends import hand_lifting as hl
from dexman_perception.core.backends import mediapipe_models as mm
from dexman_perception.core.backends import registry
from dexman_perception.core.stages import BackendUnavailable, BodyEstimator, HandEstimator

HAND3D_ORDER = ['WRIST', 'THUMB_CMC', 'THUMB_MCP', 'THUMB_IP', 'THUMB_TIP',
                'INDEX_FINGER_MCP', 'INDEX_FINGER_PIP', 'INDEX_FINGER_DIP', 'INDEX_FINGER_TIP',
                'MIDDLE_FINGER_MCP', 'MIDDLE_FINGER_PIP', 'MIDDLE_FINGER_DIP', 'MIDDLE_FINGER_TIP',
                'RING_FINGER_MCP', 'RING_FINGER_PIP', 'RING_FINGER_DIP', 'RING_FINGER_TIP',
                'PINKY_MCP', 'PINKY_PIP', 'PINKY_DIP', 'PINKY_TIP']


def intrinsics(w, h, f_rel=0.8):
    """A plausible pinhole for the clips (they carry no calibration)."""
    return np.array([[f_rel * w, 0, (w - 1) / 2], [0, f_rel * w, (h - 1) / 2], [0, 0, 1.0]])


def read_frames(path, n=1, step=1):
    cap = cv2.VideoCapture(str(path))
    frames = []
    i = 0
    while len(frames) < n:
        ok, bgr = cap.read()
        if not ok:
            break
        if i % step == 0:
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        i += 1
    cap.release()
    assert frames, f'could not decode {path}'
    return frames


def clip(shared_videos, name):
    for p in shared_videos:
        if p.name == name:
            return p
    pytest.skip(f'{name} not among the shared clips')


def _create(stage, **cfg):
    try:
        return registry.create(stage, 'mediapipe', **cfg)
    except BackendUnavailable as e:
        pytest.skip(f'MediaPipe backend unavailable: {e}')


@pytest.fixture(scope='module')
def hands():
    h = _create('hands')
    yield h
    h.close()


@pytest.fixture(scope='module')
def body():
    b = _create('body')
    yield b
    b.close()


# ------------------------------------------------------------------------------- order
def test_mediapipe_landmark_order_is_the_hand3d_order():
    pytest.importorskip('mediapipe', reason='mediapipe is not installed')
    from mediapipe.tasks.python.vision.hand_landmarker import HandLandmark
    assert [m.name for m in sorted(HandLandmark, key=int)] == HAND3D_ORDER
    assert [int(HandLandmark[n]) for n in HAND3D_ORDER] == list(hl.MEDIAPIPE_TO_HAND3D)


# ------------------------------------------------------------------------------- hands, real
def test_backend_implements_the_stage_interface(hands):
    assert isinstance(hands, HandEstimator)
    assert hands.model_path.name == mm.HAND_BUNDLE


def test_real_frames_give_two_plausible_hands_with_the_persons_own_handedness(hands, shared_videos):
    """First frame of every clip: a person facing the camera with both hands on a table."""
    for path in shared_videos:
        rgb = read_frames(path)[0]
        H, W = rgb.shape[:2]
        found = hands.estimate(rgb, intrinsics(W, H))
        assert len(found) == 2, f'{path.name}: {len(found)} hands'
        assert {h.handedness for h in found} == {hl.LEFT, hl.RIGHT}
        for h in found:
            assert h.metric and 0.5 <= h.confidence <= 1.0
            assert h.keypoints.shape == (21, 3) and np.isfinite(h.keypoints).all()
            assert hl.inside_image(h.keypoints_2d, W, H).all(), path.name
            assert (h.keypoint_confidence > 0).all()
            assert 0.2 < np.median(h.keypoints[:, 2]) < 3.0          # in front, at table range
            palm = np.linalg.norm(h.keypoints[9] - h.keypoints[0])
            assert 0.05 < palm < 0.13, f'{path.name}: wrist-middle MCP {palm:.3f} m'
            # the 3D keypoints lie on the rays of the 2D ones
            assert np.allclose(hl.project(h.keypoints, intrinsics(W, H)), h.keypoints_2d,
                               atol=1e-6)
        # the person faces the camera: their right hand is on the image's left
        by_side = {h.handedness: h for h in found}
        assert by_side[hl.RIGHT].keypoints_2d[0, 0] < by_side[hl.LEFT].keypoints_2d[0, 0], \
            path.name


def test_mirrored_frame_swaps_the_labels(hands, shared_videos):
    rgb = read_frames(shared_videos[0])[0]
    H, W = rgb.shape[:2]
    a = {h.handedness: h.keypoints_2d[0, 0] for h in hands.estimate(rgb, intrinsics(W, H))}
    b = {h.handedness: h.keypoints_2d[0, 0]
         for h in hands.estimate(np.ascontiguousarray(rgb[:, ::-1]), intrinsics(W, H))}
    assert set(a) == set(b) == {hl.LEFT, hl.RIGHT}
    for side in a:                                    # the same physical hand, other label
        assert abs((W - 1 - b[1 - side]) - a[side]) < 20


def test_wrist_frame_of_palm_down_hands_faces_the_camera(hands, shared_videos):
    """Hands resting palm-down on the table: the dorsal z axis points towards the camera
    (negative optical z) for both labels: MediaPipe's label matches the hand's chirality."""
    rgb = read_frames(clip(shared_videos, '20230928_047_original.mp4'))[0]
    H, W = rgb.shape[:2]
    for h in hands.estimate(rgb, intrinsics(W, H)):
        F = hl.wrist_frame(h.keypoints, h.handedness)
        assert np.isclose(np.linalg.det(F[:3, :3]), 1.0)
        assert F[2, 2] < 0, h.handedness


def test_blank_images_give_no_hands(hands):
    K = intrinsics(640, 480)
    assert hands.estimate(np.zeros((480, 640, 3), np.uint8), K) == []
    assert hands.estimate(np.full((480, 640, 3), 200, np.uint8), K) == []
    assert hands.estimate(np.zeros((480, 640, 3), np.uint8), K,
                          depth=np.zeros((480, 640), np.float32)) == []


def test_bad_input_is_rejected(hands):
    with pytest.raises(ValueError):
        hands.estimate(np.zeros((480, 640), np.uint8), intrinsics(640, 480))
    with pytest.raises(ValueError):
        hands.estimate(np.zeros((480, 640, 3), np.uint8), intrinsics(640, 480),
                       depth=np.zeros((10, 10), np.float32))


def test_depth_image_sets_the_hand_depth(hands, shared_videos):
    """A flat depth of 0.6 m under the hands (palm-down on the table): lifted keypoints sit on
    it, the 2D keypoints are those of the RGB-only run."""
    rgb = read_frames(clip(shared_videos, '20230928_047_original.mp4'))[0]
    H, W = rgb.shape[:2]
    K = intrinsics(W, H)
    rgb_only = {h.handedness: h for h in hands.estimate(rgb, K)}
    with_depth = hands.estimate(rgb, K, depth=np.full((H, W), 0.6, np.float32))
    assert {h.handedness for h in with_depth} == set(rgb_only)
    for h in with_depth:
        assert np.allclose(h.keypoints_2d, rgb_only[h.handedness].keypoints_2d, atol=1.0)
        assert abs(np.median(h.keypoints[:, 2]) - 0.6) < 0.005
        measured = h.keypoint_confidence == h.confidence
        assert measured.sum() >= 10


def test_time_per_640x480_frame(hands, shared_videos):
    frames = [cv2.resize(f, (640, 480), interpolation=cv2.INTER_AREA)
              for f in read_frames(shared_videos[0], n=8, step=4)]
    K = intrinsics(640, 480)
    hands.estimate(frames[0], K)                       # warm-up
    times = []
    for f in frames:
        t = time.perf_counter()
        found = hands.estimate(f, K)
        times.append((time.perf_counter() - t) * 1e3)
        assert len(found) >= 1
    ms = float(np.median(times))
    print(f'\nMediaPipeHands full model: median {ms:.1f} ms per 640x480 frame '
          f'(min {min(times):.1f}, max {max(times):.1f})')
    assert ms < 1000.0                                 # 2 shared cores: a loose bound


def test_lite_model_finds_the_same_hands(hands, shared_videos):
    rgb = read_frames(clip(shared_videos, 'lift_pot1_original.mp4'))[0]
    H, W = rgb.shape[:2]
    K = intrinsics(W, H)
    full = {h.handedness: h for h in hands.estimate(rgb, K)}
    with _create('hands', model='lite') as lite:
        assert lite.model_path.name == mm.HAND_LITE_BUNDLE
        found = {h.handedness: h for h in lite.estimate(rgb, K)}
    assert set(found) == set(full) == {hl.LEFT, hl.RIGHT}
    for s in found:                                     # same hands, within a few pixels
        assert np.median(np.linalg.norm(found[s].keypoints_2d - full[s].keypoints_2d,
                                        axis=1)) < 10.0


def test_video_mode_tracks_smoothly(shared_videos):
    frames = read_frames(clip(shared_videos, 'lift_pot1_original.mp4'), n=12, step=2)
    H, W = frames[0].shape[:2]
    K = intrinsics(W, H)
    with _create('hands', running_mode='VIDEO') as video:
        wrists = []
        for i, f in enumerate(frames):
            found = {h.handedness: h for h in video.estimate(f, K, timestamp=i / 12.0)}
            assert set(found) == {hl.LEFT, hl.RIGHT}, f'frame {i}'
            wrists.append([found[s].keypoints_2d[0] for s in (hl.LEFT, hl.RIGHT)])
    jumps = np.linalg.norm(np.diff(np.array(wrists), axis=0), axis=-1)
    assert jumps.max() < 60.0                          # pixels between frames 1/12 s apart


# ------------------------------------------------------------------------------- body
def test_body_on_a_frame_with_the_person_in_view(body, shared_videos):
    assert isinstance(body, BodyEstimator)
    rgb = read_frames(clip(shared_videos, 'lift_pot1_original.mp4'))[0]
    H, W = rgb.shape[:2]
    K = intrinsics(W, H)
    est = body.estimate(rgb, K, None)
    assert est is not None and 0.5 <= est.confidence <= 1.0
    assert np.allclose(est.pelvis, (est.left_hip + est.right_hip) / 2)
    uv = hl.project(np.array([est.left_hip, est.right_hip]), K)
    assert uv[0, 0] > uv[1, 0]                         # facing the camera: own left on the right
    assert hl.inside_image(uv, W, H).all()
    assert 0.15 < np.linalg.norm(est.left_hip - est.right_hip) < 0.4
    assert 0.5 < est.pelvis[2] < 4.0


def test_body_with_depth_and_without_a_person(body, shared_videos):
    """Depth rendered 0.1 m behind the RGB-only landmarks, with a table 0.3 m in front of the
    hips: the hips move back by 0.1 m (from the depth-anchored model, not the table)."""
    rgb = read_frames(clip(shared_videos, 'lift_pot1_original.mp4'))[0]
    H, W = rgb.shape[:2]
    K = intrinsics(W, H)
    ref = body.estimate(rgb, K, None)
    lms = body.last_landmarks
    depth = np.full((H, W), 4.0, np.float32)
    for (u, v), z in zip(hl.project(lms, K), lms[:, 2]):
        cv2.circle(depth, (int(round(u)), int(round(v))), 8, float(z + 0.1), -1)
    for i in (23, 24):
        u, v = np.round(hl.project(lms[i:i + 1], K)[0]).astype(int)
        cv2.circle(depth, (int(u), int(v)), 8, float(lms[i, 2] - 0.3), -1)
    est = body.estimate(rgb, K, depth)
    assert est is not None
    assert np.allclose(est.pelvis[2], ref.pelvis[2] + 0.1, atol=0.01)
    assert np.allclose(hl.project(est.left_hip[None], K), hl.project(ref.left_hip[None], K))
    assert body.estimate(np.zeros((480, 640, 3), np.uint8), intrinsics(640, 480), None) is None


# ------------------------------------------------------------------------------- bundles
def _fake_wheel(tmp_path, corrupt=None):
    """A stand-in wheel with the right member names; contents fake (so hashes mismatch) unless
    taken from the real cached wheel."""
    w = tmp_path / 'wheels' / mm.WHEEL_NAME
    w.parent.mkdir(parents=True)
    with zipfile.ZipFile(w, 'w') as z:
        for m in mm.SOURCE_SHA256:
            z.writestr(m, b'not a model' if m == corrupt or corrupt == 'all' else b'')
    return w


def test_hash_mismatch_is_refused(tmp_path):
    _fake_wheel(tmp_path, corrupt='all')
    with pytest.raises(mm.ModelIntegrityError, match='SHA-256'):
        mm.ensure_bundles(tmp_path, [mm.HAND_BUNDLE])
    assert not (tmp_path / mm.HAND_BUNDLE).exists()


def test_missing_models_name_the_fetch_command(tmp_path):
    with pytest.raises(BackendUnavailable, match='--fetch'):
        mm.bundle_path(mm.HAND_BUNDLE, tmp_path)
    with pytest.raises(BackendUnavailable, match='mediapipe'):
        registry.create('hands', 'mediapipe', model_dir=tmp_path)


def test_model_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv('DEXMAN_MODEL_DIR', str(tmp_path / 'm'))
    assert mm.default_model_dir() == tmp_path / 'm'
    monkeypatch.delenv('DEXMAN_MODEL_DIR')
    monkeypatch.setenv('DEXMAN_ROOT', str(tmp_path))
    assert mm.default_model_dir() == tmp_path / '.cache' / 'models'


def test_bundles_from_the_cached_wheel_are_verified_deterministic_and_idempotent(tmp_path):
    wheel = mm.find_wheel()
    if wheel is None:
        pytest.skip(f'no mediapipe {mm.MEDIAPIPE_MODELS_VERSION} wheel in '
                    f'{mm.default_model_dir()}; run: {mm.FETCH_COMMAND}')
    pytest.importorskip('mediapipe', reason='the pose bundle needs mediapipe 1.2.x')
    (tmp_path / 'wheels').mkdir()
    (tmp_path / 'wheels' / wheel.name).symlink_to(wheel)
    paths = mm.ensure_bundles(tmp_path)
    assert set(paths) == set(mm.BUNDLES)
    mtimes = {n: p.stat().st_mtime_ns for n, p in paths.items()}
    assert mm.ensure_bundles(tmp_path) == paths                         # idempotent: no rebuild
    assert {n: p.stat().st_mtime_ns for n, p in paths.items()} == mtimes
    for name, recipe in mm.BUNDLES.items():
        with zipfile.ZipFile(paths[name]) as z:
            assert sorted(z.namelist()) == sorted(inner for inner, _, _ in recipe)
            for inner, member, transform in recipe:
                data = z.read(inner)
                if transform is None:
                    assert hashlib.sha256(data).hexdigest() == mm.SOURCE_SHA256[member]
                else:
                    assert b'TFLITE_METADATA' in data and data[4:8] == b'TFL3'
    # a second build is byte-identical (fixed zip timestamps, deterministic metadata)
    again = mm.build_bundles(wheel, tmp_path / 'again')
    for n in paths:
        assert again[n].read_bytes() == paths[n].read_bytes()
    # a tampered bundle is rebuilt
    paths[mm.HAND_BUNDLE].write_bytes(b'garbage')
    assert mm.valid_bundles(tmp_path).keys() == set(mm.BUNDLES) - {mm.HAND_BUNDLE}
    mm.ensure_bundles(tmp_path, [mm.HAND_BUNDLE])
    assert zipfile.ZipFile(io.BytesIO(paths[mm.HAND_BUNDLE].read_bytes())).testzip() is None


def test_cli_builds_from_a_wheel(tmp_path, capsys):
    wheel = mm.find_wheel()
    if wheel is None:
        pytest.skip(f'no cached wheel; run: {mm.FETCH_COMMAND}')
    pytest.importorskip('mediapipe', reason='the lite bundle needs mediapipe 1.2.x')
    assert mm.main(['--wheel', str(wheel), '--model-dir', str(tmp_path),
                    '--bundle', mm.HAND_LITE_BUNDLE]) == 0
    assert (tmp_path / mm.HAND_LITE_BUNDLE).is_file()
    assert mm.HAND_LITE_BUNDLE in capsys.readouterr().out
    assert mm.main(['--model-dir', str(tmp_path / 'empty')]) == 1
