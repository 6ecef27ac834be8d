"""MediaPipe model bundles for the CPU defaults, built from the models inside a PyPI wheel.

The MediaPipe Tasks runtime we use (``mediapipe`` 1.2.x, numpy-2 compatible) ships no models; it
reads ``.task`` bundles, which are zip files of TFLite models under fixed names. The
``mediapipe==0.10.21`` wheel (the last one with the legacy solutions) carries those TFLite models
in ``mediapipe/modules/``, so the bundles are built from it, with no hub download:

    hand_landmarker.task       hand_detector.tflite           <- palm_detection_full.tflite
                               hand_landmarks_detector.tflite <- hand_landmark_full.tflite
    hand_landmarker_lite.task  the same from the *_lite.tflite models (palm_detection_lite
                                   gets the input metadata its full sibling carries)
    pose_landmarker.task       pose_detector.tflite           <- pose_detection.tflite
                               pose_landmarks_detector.tflite <- pose_landmark_full.tflite, with
                                   TFLite metadata added (input normalisation [0, 255] -> [0, 1],
                                   as the legacy graph fed it): the Tasks runtime refuses a float
                                   input without it. The 0.10.21 wheel has only the "full" pose
                                   landmark model (no lite/heavy).

Every model taken from the wheel is checked against its SHA-256 below before use. The bundles are
written atomically with fixed zip timestamps; a manifest (``mediapipe_models.json``) records the
source and bundle hashes, so a second run with valid bundles does nothing (idempotent).

Cache directory: ``$DEXMAN_MODEL_DIR``, else ``$DEXMAN_ROOT/.cache/models`` (env.sh sets
DEXMAN_ROOT), else ``<repo>/.cache/models`` found from this file, else ``~/.cache/dexman/models``.
The wheel is kept in ``<cache>/wheels/``.

    python -m dexman_perception.core.backends.mediapipe_models --fetch     # download + build
    python -m dexman_perception.core.backends.mediapipe_models --wheel W   # build from a wheel
    python -m dexman_perception.core.backends.mediapipe_models             # check, build if the
                                                                           # wheel is cached

``--fetch`` runs ``pip download --no-deps mediapipe==0.10.21`` for CPython 3.11 manylinux_2_28
x86_64 (whatever the running interpreter: only the data files are used, nothing is installed).
Writing the pose metadata needs the flatbuffers schema modules of the installed ``mediapipe``
1.2.x and ``flatbuffers``; the hand bundles need nothing beyond the standard library.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import zipfile
from typing import Callable, Iterable

from ..stages import BackendUnavailable

MEDIAPIPE_MODELS_VERSION = '0.10.21'
FETCH_COMMAND = 'python -m dexman_perception.core.backends.mediapipe_models --fetch'
WHEEL_GLOB = f'mediapipe-{MEDIAPIPE_MODELS_VERSION}-*.whl'
# The file pip fetches with the platform flags below (informational: the members are verified).
WHEEL_NAME = f'mediapipe-{MEDIAPIPE_MODELS_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl'
WHEEL_SHA256 = '05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3'
MANIFEST = 'mediapipe_models.json'

_M = 'mediapipe/modules/'
SOURCE_SHA256 = {
    _M + 'palm_detection/palm_detection_full.tflite':
        '1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54',
    _M + 'palm_detection/palm_detection_lite.tflite':
        'e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18',
    _M + 'hand_landmark/hand_landmark_full.tflite':
        '11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3',
    _M + 'hand_landmark/hand_landmark_lite.tflite':
        '048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6',
    _M + 'pose_detection/pose_detection.tflite':
        '9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c',
    _M + 'pose_landmark/pose_landmark_full.tflite':
        'e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f',
}

HAND_BUNDLE = 'hand_landmarker.task'
HAND_LITE_BUNDLE = 'hand_landmarker_lite.task'
POSE_BUNDLE = 'pose_landmarker.task'


RUNTIME_VERSION = '1.2.3'
INSTALL_HINT = (f'pip install --no-deps mediapipe=={RUNTIME_VERSION} && pip install absl-py '
                'flatbuffers certifi matplotlib (not plain `pip install mediapipe`: its '
                'dependencies pull opencv-contrib-python, which overwrites '
                'opencv-python-headless\'s cv2)')


def import_mediapipe():
    """The mediapipe package (Tasks API), or BackendUnavailable saying how to install it."""
    try:
        import mediapipe
        from mediapipe.tasks.python import vision  # noqa: F401  (the Tasks API)
    except ImportError as e:
        raise BackendUnavailable(f'the MediaPipe CPU backends need mediapipe {RUNTIME_VERSION} '
                                 f'({e}); install: {INSTALL_HINT}; then: {FETCH_COMMAND}') from e
    return mediapipe


class ModelsUnavailable(BackendUnavailable):
    """The bundles are missing or cannot be built; the message names the command to run."""


class ModelIntegrityError(ModelsUnavailable):
    """A file taken from the wheel does not have the expected SHA-256."""


# ------------------------------------------------------------------------------- locations
def default_model_dir() -> pathlib.Path:
    """The model cache: $DEXMAN_MODEL_DIR, $DEXMAN_ROOT/.cache/models, <repo>/.cache/models
    (a parent of this file holding src/dexman_perception), or ~/.cache/dexman/models."""
    env = os.environ.get('DEXMAN_MODEL_DIR')
    if env:
        return pathlib.Path(env).expanduser()
    root = os.environ.get('DEXMAN_ROOT')
    if root:
        return pathlib.Path(root) / '.cache' / 'models'
    here = pathlib.Path(__file__).resolve()
    for parent in here.parents:
        if (parent / 'src' / 'dexman_perception').is_dir():
            return parent / '.cache' / 'models'
    return pathlib.Path.home() / '.cache' / 'dexman' / 'models'


def _dir(model_dir) -> pathlib.Path:
    return pathlib.Path(model_dir).expanduser() if model_dir else default_model_dir()


from dexman_common.hashing import sha256_file  # noqa: E402 (one implementation)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()




# ------------------------------------------------------------------------------- bundle recipes
def add_image_input_metadata(tflite: bytes, *, mean: float, std: float, name: str,
                             output_names: Iterable[str] = ()) -> bytes:
    """``tflite`` with a TFLITE_METADATA entry describing its image input (RGB, normalised as
    (pixel - mean) / std), which the MediaPipe Tasks runtime needs for float inputs. Uses the
    flatbuffers schema modules shipped in mediapipe 1.2.x."""
    try:
        import flatbuffers
        import numpy as np
        from mediapipe.tasks.metadata import metadata_schema_py_generated as mfb
        from mediapipe.tasks.metadata import schema_py_generated as sfb
    except ImportError as e:
        raise ModelsUnavailable(
            f'building {name} needs the installed mediapipe 1.2.x and flatbuffers '
            f'({e}); install them (see the setup), then run: {FETCH_COMMAND}') from e
    model = sfb.ModelT.InitFromObj(sfb.Model.GetRootAsModel(tflite, 0))
    if any((m.name or b'') in (b'TFLITE_METADATA', 'TFLITE_METADATA')
           for m in (model.metadata or [])):
        return tflite
    image = mfb.TensorMetadataT()
    image.name = 'image'
    image.content = mfb.ContentT()
    image.content.contentPropertiesType = mfb.ContentProperties.ImageProperties
    props = mfb.ImagePropertiesT()
    props.colorSpace = mfb.ColorSpaceType.RGB
    image.content.contentProperties = props
    norm = mfb.NormalizationOptionsT()
    norm.mean, norm.std = [float(mean)], [float(std)]
    unit = mfb.ProcessUnitT()
    unit.optionsType = mfb.ProcessUnitOptions.NormalizationOptions
    unit.options = norm
    image.processUnits = [unit]
    outputs = []
    for out_name in output_names:
        t = mfb.TensorMetadataT()
        t.name = out_name
        outputs.append(t)
    sub = mfb.SubGraphMetadataT()
    sub.inputTensorMetadata = [image]
    sub.outputTensorMetadata = outputs
    meta = mfb.ModelMetadataT()
    meta.name = name
    meta.minParserVersion = '1.0.0'
    meta.subgraphMetadata = [sub]
    b = flatbuffers.Builder(0)
    b.Finish(meta.Pack(b), b'M001')
    meta_bytes = bytes(b.Output())
    buf = sfb.BufferT()
    buf.data = np.frombuffer(meta_bytes, np.uint8)
    model.buffers.append(buf)
    entry = sfb.MetadataT()
    entry.name = 'TFLITE_METADATA'
    entry.buffer = len(model.buffers) - 1
    model.metadata = list(model.metadata or []) + [entry]
    b = flatbuffers.Builder(len(tflite) + len(meta_bytes) + 4096)
    b.Finish(model.Pack(b), b'TFL3')
    return bytes(b.Output())


def _pose_landmarks_metadata(data: bytes) -> bytes:
    # legacy pose_landmark_cpu graph: ImageToTensor range [0, 1]; outputs in tensor order
    return add_image_input_metadata(
        data, mean=0.0, std=255.0, name='PoseLandmarksDetector',
        output_names=('landmarks', 'pose presence', 'segmentation', 'heatmap',
                      'world landmarks'))


def _palm_detection_metadata(data: bytes) -> bytes:
    # palm_detection_lite ships without metadata; its full sibling's says [0, 255] -> [0, 1]
    return add_image_input_metadata(data, mean=0.0, std=255.0, name='Multi Hand Detection',
                                    output_names=('palm detection', 'scores'))


# bundle -> [(name inside the bundle, member of the wheel, transform or None)]
Recipe = list[tuple[str, str, 'Callable[[bytes], bytes] | None']]
BUNDLES: dict[str, Recipe] = {
    HAND_BUNDLE: [
        ('hand_detector.tflite', _M + 'palm_detection/palm_detection_full.tflite', None),
        ('hand_landmarks_detector.tflite', _M + 'hand_landmark/hand_landmark_full.tflite', None)],
    HAND_LITE_BUNDLE: [
        ('hand_detector.tflite', _M + 'palm_detection/palm_detection_lite.tflite',
         _palm_detection_metadata),
        ('hand_landmarks_detector.tflite', _M + 'hand_landmark/hand_landmark_lite.tflite', None)],
    POSE_BUNDLE: [
        ('pose_detector.tflite', _M + 'pose_detection/pose_detection.tflite', None),
        ('pose_landmarks_detector.tflite', _M + 'pose_landmark/pose_landmark_full.tflite',
         _pose_landmarks_metadata)],
}


# ------------------------------------------------------------------------------- build
def _zip_bytes(files: list[tuple[str, bytes]]) -> bytes:
    """A deterministic stored zip (fixed timestamps and modes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w', zipfile.ZIP_STORED) as z:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    return out.getvalue()


def _atomic_write(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + '.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_verified_members(wheel, members: Iterable[str]) -> dict[str, bytes]:
    """The wheel's members, each checked against SOURCE_SHA256 (ModelIntegrityError if not)."""
    wheel = pathlib.Path(wheel)
    out = {}
    try:
        with zipfile.ZipFile(wheel) as z:
            names = set(z.namelist())
            for m in members:
                if m not in names:
                    raise ModelIntegrityError(
                        f'{wheel.name} has no {m}: not a mediapipe {MEDIAPIPE_MODELS_VERSION} '
                        f'wheel? Run: {FETCH_COMMAND}')
                data = z.read(m)
                got = sha256_bytes(data)
                if got != SOURCE_SHA256[m]:
                    raise ModelIntegrityError(
                        f'{m} in {wheel} has SHA-256 {got}, expected {SOURCE_SHA256[m]}; delete '
                        f'the wheel and run: {FETCH_COMMAND}')
                out[m] = data
    except zipfile.BadZipFile as e:
        raise ModelIntegrityError(f'{wheel} is not a valid wheel ({e}); delete it and run: '
                                  f'{FETCH_COMMAND}') from e
    return out


def build_bundles(wheel, model_dir=None,
                  names: Iterable[str] | None = None) -> dict[str, pathlib.Path]:
    """Build the bundles ``names`` (default all) from a mediapipe 0.10.21 wheel into model_dir
    (verifying every source model's hash) and update the manifest. Returns name -> path."""
    d = _dir(model_dir)
    names = list(BUNDLES) if names is None else list(names)
    unknown = [n for n in names if n not in BUNDLES]
    if unknown:
        raise ValueError(f'unknown bundle(s) {unknown}; known: {sorted(BUNDLES)}')
    members = {m for n in names for _, m, _ in BUNDLES[n]}
    data = read_verified_members(wheel, sorted(members))
    manifest = _read_manifest(d)
    paths = {}
    for n in names:
        files = []
        for inner, member, transform in BUNDLES[n]:
            blob = data[member]
            files.append((inner, transform(blob) if transform else blob))
        bundle = _zip_bytes(files)
        path = d / n
        _atomic_write(path, bundle)
        manifest['bundles'][n] = {
            'sha256': sha256_bytes(bundle), 'size': len(bundle),
            'sources': {inner: {'member': member, 'sha256': SOURCE_SHA256[member]}
                        for inner, member, _ in BUNDLES[n]}}
        paths[n] = path
    manifest['wheel'] = {'name': pathlib.Path(wheel).name, 'sha256': sha256_file(wheel)}
    manifest['mediapipe_models_version'] = MEDIAPIPE_MODELS_VERSION
    _atomic_write(d / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
    return paths


def _read_manifest(d: pathlib.Path) -> dict:
    try:
        m = json.loads((d / MANIFEST).read_text())
        if isinstance(m, dict) and isinstance(m.get('bundles'), dict):
            return m
    except (OSError, ValueError):
        pass
    return {'bundles': {}}


def valid_bundles(model_dir=None) -> dict[str, pathlib.Path]:
    """Bundles present in model_dir whose bytes match the manifest written when they were built
    from verified sources."""
    d = _dir(model_dir)
    manifest = _read_manifest(d)
    ok = {}
    for n, rec in manifest['bundles'].items():
        p = d / n
        if n in BUNDLES and p.is_file() and p.stat().st_size == rec.get('size') \
                and sha256_file(p) == rec.get('sha256'):
            ok[n] = p
    return ok


def find_wheel(model_dir=None) -> pathlib.Path | None:
    """A cached mediapipe 0.10.21 wheel in <model_dir>/wheels, if any."""
    wheels = sorted((_dir(model_dir) / 'wheels').glob(WHEEL_GLOB))
    return wheels[0] if wheels else None


def pip_download_command(dest) -> list[str]:
    return [sys.executable, '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:',
            '--python-version', '3.11', '--implementation', 'cp', '--abi', 'cp311',
            '--platform', 'manylinux_2_28_x86_64', '--dest', str(dest),
            f'mediapipe=={MEDIAPIPE_MODELS_VERSION}']


def download_wheel(model_dir=None) -> pathlib.Path:
    """``pip download --no-deps mediapipe==0.10.21`` into <model_dir>/wheels (nothing is
    installed). Returns the wheel path."""
    dest = _dir(model_dir) / 'wheels'
    dest.mkdir(parents=True, exist_ok=True)
    cmd = pip_download_command(dest)
    res = subprocess.run(cmd, capture_output=True, text=True)
    wheel = find_wheel(model_dir)
    if res.returncode != 0 or wheel is None:
        tail = (res.stderr or res.stdout or '').strip()[-2000:]
        raise ModelsUnavailable(f'`{" ".join(cmd)}` failed (exit {res.returncode}):\n{tail}')
    return wheel


def ensure_bundles(model_dir=None, names: Iterable[str] | None = None, *,
                   fetch: bool = False) -> dict[str, pathlib.Path]:
    """Paths of the bundles ``names`` (default all): valid ones are reused; missing ones are
    built from the cached wheel; with ``fetch`` the wheel is downloaded first when absent.
    Raises ModelsUnavailable naming FETCH_COMMAND when they cannot be had."""
    d = _dir(model_dir)
    names = list(BUNDLES) if names is None else list(names)
    have = valid_bundles(d)
    missing = [n for n in names if n not in have]
    if not missing:
        return {n: have[n] for n in names}
    wheel = find_wheel(d)
    if wheel is None:
        if not fetch:
            raise ModelsUnavailable(
                f'MediaPipe model bundle(s) {missing} are not in {d} and no mediapipe '
                f'{MEDIAPIPE_MODELS_VERSION} wheel is cached there; run: {FETCH_COMMAND}'
                + ('' if model_dir is None else f' --model-dir {d}'))
        wheel = download_wheel(d)
    try:
        built = build_bundles(wheel, d, missing)
    except ModelIntegrityError:
        if not fetch:
            raise
        wheel.unlink()                       # a corrupt or foreign download: fetch it again
        built = build_bundles(download_wheel(d), d, missing)
    have.update(built)
    return {n: have[n] for n in names}


def bundle_path(name: str, model_dir=None) -> pathlib.Path:
    """Path of one bundle for a backend: reused or built from the cached wheel, never fetched
    (a backend must not download at run time)."""
    return ensure_bundles(model_dir, [name], fetch=False)[name]


# ------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog='python -m dexman_perception.core.backends.mediapipe_models',
        description='Build the MediaPipe Tasks bundles (hand and pose landmarkers) from the '
                    f'models in the mediapipe=={MEDIAPIPE_MODELS_VERSION} PyPI wheel.')
    ap.add_argument('--fetch', action='store_true',
                    help=f'pip download --no-deps mediapipe=={MEDIAPIPE_MODELS_VERSION} into '
                         '<model-dir>/wheels when not cached, then build (idempotent)')
    ap.add_argument('--wheel', type=pathlib.Path, help='build from this wheel file')
    ap.add_argument('--model-dir', type=pathlib.Path, default=None,
                    help=f'cache directory (default {default_model_dir()})')
    ap.add_argument('--bundle', action='append', choices=sorted(BUNDLES),
                    help='only this bundle (repeatable; default all)')
    args = ap.parse_args(argv)
    d = _dir(args.model_dir)
    try:
        if args.wheel:
            paths = build_bundles(args.wheel, d, args.bundle)
        else:
            paths = ensure_bundles(d, args.bundle, fetch=args.fetch)
    except BackendUnavailable as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    for n, p in sorted(paths.items()):
        print(f'{p}  {p.stat().st_size / 1e6:.1f} MB')
    return 0


if __name__ == '__main__':
    sys.exit(main())
