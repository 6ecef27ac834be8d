"""Evaluate a trained skill (paper 4.2) and export its rollout:

    ros2 run dexman_rl evaluate SKILL_DIR [--reference DIR] [--rollouts N] [--video OUT.mp4]
        [--export OUT.npz] [--json]

Runs the skill's policy and the zero-residual replay baseline for N rollouts each from frame 0
(default: the skill's success.rollouts_per_sequence) in the skill's own configuration, prints
success rate, E_r and E_t (over successful rollouts). ``--export`` writes one deterministic rollout
as a JointTrajectory-shaped npz (joint_names, time_from_start, positions, measured_positions,
object_poses, target_object_poses); ``--video`` renders it offscreen. The skill refuses to run on a
robot model whose manifest hash differs from the one it was trained on. Exit status: 0, 2 bad input.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys


def _parse(argv):
    p = argparse.ArgumentParser(prog='ros2 run dexman_rl evaluate', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('skill', help='skill directory (<skills>/<skill_id>)')
    p.add_argument('--reference', default=None, help='reference directory (default: the one recorded in the skill)')
    p.add_argument('--rollouts', type=int, default=None, help='rollouts per policy (default: the skill config)')
    p.add_argument('--video', default=None, help='render the rollout to this MP4')
    p.add_argument('--export', default=None, help='write the rollout (JointTrajectory-shaped npz)')
    p.add_argument('--json', action='store_true', help='print one JSON line')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = _parse(argv)
    import numpy as np

    from dexman_common.artefacts import skill as skm
    from dexman_common.artefacts.reference import ReferenceArtefactError
    from dexman_common.config import ConfigError
    from dexman_rl.core import skill_playback as sp
    from dexman_rl.core.reference_data import ReferenceDataError
    try:
        if args.rollouts is not None and args.rollouts < 1:
            raise ConfigError('--rollouts must be >= 1')
        player = sp.SkillPlayer.open(args.skill, reference_dir=args.reference)
        result = player.evaluate(args.rollouts)
        if args.export or args.video:
            rollout, qpos, model, lookat = player.rollout()
            if args.export:
                out = pathlib.Path(args.export)
                out.parent.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(out, **{k: np.asarray(getattr(rollout, k)) for k in
                                            ('joint_names', 'time_from_start', 'positions', 'measured_positions',
                                             'object_poses', 'target_object_poses')})
                result['export'] = str(out)
            if args.video:
                from dexman_rl.core.rollout_video import render_rollout
                result['video'] = str(render_rollout(model, qpos, args.video, lookat=lookat, cfg=player.configs.video))
        player.close()
    except (skm.SkillArtefactError, sp.SkillPlaybackError, ConfigError, ReferenceDataError,
            ReferenceArtefactError) as e:
        print(f'evaluate: {e}', file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f'{k}: {v}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
