"""Backend registry: (stage, name) -> implementation, imported only when asked for.

    from dexman_perception.core.backends import registry
    hands = registry.create('hands', 'mediapipe')            # CPU default
    hands = registry.create('hands', 'hamer', checkpoint='/path/hamer.ckpt', device='cuda')

Nodes expose the name as their `backend` parameter and pass backend options through. A backend
whose tunables live in config/perception.yaml names its config dataclass in a `CONFIG` class
attribute and takes `config=` (the stage node loads the section and passes it; backend options
that name config fields override the file's values).
"""
from __future__ import annotations

import importlib
from typing import Any

from ..stages import BackendUnavailable

# stage -> {name: "module:Class"}; the first entry of each stage is its embedded CPU default.
BACKENDS: dict[str, dict[str, str]] = {
    'segmentation': {'depth_color': 'cpu_segmentation:DepthColorSegmenter',
                     'sam2': 'sam2_adapter:Sam2Segmenter'},
    'depth': {'vggt': 'vggt_adapter:VggtDepth'},
    'hands': {'mediapipe': 'mediapipe_hands:MediaPipeHands',
              'hamer': 'hamer_adapter:HamerHands'},
    'body': {'mediapipe': 'mediapipe_body:MediaPipeBody',
             '4dhumans': 'humans4d_adapter:FourDHumansBody'},
    'mesh': {'fused_cloud': 'cpu_mesh:FusedCloudMesh',
             'trellis': 'trellis_adapter:TrellisMesh'},
    'pose': {'icp': 'cpu_pose:IcpRefiner',
             'foundationpose': 'foundationpose_adapter:FoundationPoseRefiner'},
    'tracks': {'lucas_kanade': 'lk_tracks:LucasKanadeTracker',
               'spatialtracker': 'spatialtracker_adapter:SpatialTrackerTracks'},
    'detection': {'owlv2': 'owlv2_adapter:Owlv2Detector'},
}


def default(stage: str) -> str:
    """Name of the embedded CPU default of a stage."""
    return next(iter(_stage(stage)))


def create(stage: str, name: str, **config: Any):
    """Instantiate backend `name` of `stage` with its options. Raises ValueError for an unknown
    stage or name, BackendUnavailable when its package or checkpoint is missing."""
    return backend_class(stage, name)(**config)


def backend_class(stage: str, name: str) -> type:
    """The class of backend `name` of `stage` (its module imported; ValueError / BackendUnavailable
    as `create`). Its `CONFIG` attribute, when present, is its config dataclass."""
    entries = _stage(stage)
    if name not in entries:
        raise ValueError(f'unknown {stage} backend {name!r}; choose one of {sorted(entries)}')
    module, cls = entries[name].split(':')
    try:
        mod = importlib.import_module(f'{__package__}.{module}')
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith(__package__):
            raise BackendUnavailable(f'{stage} backend {name!r} is not implemented in this '
                                     f'version ({module}.py is missing)') from e
        raise
    return getattr(mod, cls)


def _stage(stage: str) -> dict[str, str]:
    if stage not in BACKENDS:
        raise ValueError(f'unknown perception stage {stage!r}; stages: {sorted(BACKENDS)}')
    return BACKENDS[stage]
