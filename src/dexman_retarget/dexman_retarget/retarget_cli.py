"""Retarget a demonstration onto the G1 + two Shadow hands:

    python -m dexman_retarget.retarget_cli DEMO_DIR --out DIR [--robot-model DIR]
        [--ik-backend mujoco|genesis] [--reference-id ID] [--frame-rate HZ] [--no-progress] [--json]

DEMO_DIR is a demonstration artefact (demonstration.json + trajectories.npz, in the robot world); a
synthetic case is converted first with `dexman_synth demo CASE --out DIR` (benchmark side). Writes
DIR/<reference_id>/ atomically (dexman_common.artefacts.reference) and prints the per-frame reach
report (or, with --json, one JSON summary line).

The robot model is built into --robot-model (default <DEXMAN_ROOT>/artifacts/robot_model) when it
is not there yet. Exit status: 0 written; 2 bad input (unreadable demonstration or case, bad
option, missing asset package, bad checkpoint); 1 unexpected error.
"""
from __future__ import annotations

import argparse
import json
import sys


def _parse(argv):
    p = argparse.ArgumentParser(prog='python -m dexman_retarget.retarget_cli', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('input', metavar='DEMO_DIR', help='demonstration artefact directory')
    p.add_argument('--out', required=True, metavar='DIR', help='reference root: writes DIR/<reference_id>/')
    p.add_argument('--robot-model', default=None, metavar='DIR',
                   help='robot-model build (default <DEXMAN_ROOT>/artifacts/robot_model; built if missing)')
    p.add_argument('--ik-backend', default='mujoco', choices=('mujoco', 'genesis'),
                   help='wrist IK: mujoco (default, damped least squares) or genesis (optional install)')
    p.add_argument('--reference-id', default=None, help='default: the demonstration id')
    p.add_argument('--frame-rate', type=float, default=30.0, help='reference frame rate, Hz (default 30)')
    p.add_argument('--finger-checkpoint', default=None, help='finger MLP checkpoint (default: the shipped one)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.add_argument('--json', action='store_true', help='print one JSON summary line instead of the report')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = _parse(argv)
    import torch
    torch.set_num_threads(1)
    from dexman_common.artefacts import reference as refm
    from dexman_retarget.core import retarget_pipeline as rp
    try:
        opts = rp.RetargetOptions(frame_rate=args.frame_rate, ik_backend=args.ik_backend,
                                  finger_checkpoint=args.finger_checkpoint, progress=not args.no_progress)
        opts.validate()
        demo, meshes = rp.load_input(args.input)
        model_dir, built = rp.ensure_robot_model(args.robot_model or rp.default_robot_model_dir())
        if built:
            print(f'built the robot model into {model_dir}', file=sys.stderr)
        res = rp.Retargeter(model_dir, opts).run(demo, meshes, args.reference_id)
        path = refm.save(res.reference, args.out, res.meshes)
    except (rp.RetargetError, refm.ReferenceArtefactError) as e:
        print(f'retarget: {e}', file=sys.stderr)
        return 2
    except ImportError as e:       # e.g. the optional Genesis backend
        print(f'retarget: {e}', file=sys.stderr)
        return 2
    ref = res.reference
    if args.json:
        print(json.dumps({'reference_id': ref.reference_id, 'demonstration_id': ref.demonstration_id,
                          'artefact_uri': path.as_uri() + '/', 'frame_count': ref.n_frames,
                          'frame_rate': ref.frame_rate, 'unreachable_frames': ref.unreachable_frames,
                          'contacts': int(len(ref.contact_frame)),
                          'objects_stable': ref.object_initial_stable.tolist(),
                          'timings_s': {k: round(v, 3) for k, v in res.timings.items()}}))
    else:
        print(ref.report)
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
