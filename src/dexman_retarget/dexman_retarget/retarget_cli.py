"""Retarget a demonstration onto the G1 + two Shadow hands:

    python -m dexman_retarget.retarget_cli DEMO_DIR --out DIR [--config FILE] [--robot-model DIR]
        [--ik-backend mujoco|genesis] [--workspace-fit whole_demo|paper] [--reference-id ID]
        [--frame-rate HZ] [--no-progress] [--json]

DEMO_DIR is a demonstration artefact (demonstration.json + trajectories.npz, in the robot world); a
synthetic case is converted first with `dexman_synth demo CASE --out DIR` (benchmark side). Writes
DIR/<reference_id>/ atomically (dexman_common.artefacts.reference) and prints the per-frame reach
report (or, with --json, one JSON summary line). Settings: config/retarget.yaml (--config), the
options here replace its values for this run; the reference records them all.

The robot model is built into --robot-model (default <DEXMAN_ROOT>/artifacts/robot_model) when it
is not there yet. Exit status: 0 written; 2 bad input (unreadable demonstration or case, bad
option, missing asset package, bad checkpoint); 1 unexpected error.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys


def _parse(argv):
    p = argparse.ArgumentParser(prog='python -m dexman_retarget.retarget_cli', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('input', metavar='DEMO_DIR', help='demonstration artefact directory')
    p.add_argument('--out', required=True, metavar='DIR', help='reference root: writes DIR/<reference_id>/')
    p.add_argument('--robot-model', default=None, metavar='DIR',
                   help='robot-model build (default <DEXMAN_ROOT>/artifacts/robot_model; built if missing)')
    p.add_argument('--config', default=None, metavar='FILE',
                   help='settings (default <config dir>/retarget.yaml, see dexman_retarget.core.options)')
    p.add_argument('--ik-backend', default=None, choices=('mujoco', 'genesis'),
                   help='wrist IK: mujoco (damped least squares) or genesis (optional install); default: the config')
    p.add_argument('--workspace-fit', default=None, choices=('whole_demo', 'paper'),
                   help='translation of the demonstration: whole_demo (chosen against the arms\' reach over '
                        'every frame) or paper (none beyond the scene alignment); default: the config')
    p.add_argument('--reference-id', default=None, help='default: the demonstration id')
    p.add_argument('--frame-rate', type=float, default=None, help='reference frame rate, Hz (default: the config)')
    p.add_argument('--finger-checkpoint', default=None,
                   help='finger MLP checkpoint (default: the config, else the shipped one)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.add_argument('--json', action='store_true', help='print one JSON summary line instead of the report')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = _parse(argv)
    import torch
    torch.set_num_threads(1)
    from dexman_common.artefacts import reference as refm
    from dexman_common.config import ConfigError
    from dexman_retarget.core import retarget_pipeline as rp
    try:
        over = {k: v for k, v in (('frame_rate', args.frame_rate), ('ik_backend', args.ik_backend),
                                  ('finger_checkpoint', args.finger_checkpoint)) if v is not None}
        if args.no_progress:
            over['progress'] = False
        config_file = args.config or rp.default_config_file()
        opts = rp.load_options(config_file, **over)
        if args.workspace_fit is not None:
            opts = dataclasses.replace(opts, workspace_fit=opts.workspace_fit.replace(method=args.workspace_fit))
        demo, meshes = rp.load_input(args.input)
        model_dir, built = rp.ensure_robot_model(args.robot_model or rp.default_robot_model_dir(), config_file)
        if built:
            print(f'built the robot model into {model_dir}', file=sys.stderr)
        res = rp.Retargeter(model_dir, opts, config_file).run(demo, meshes, args.reference_id)
        path = refm.save(res.reference, args.out, res.meshes)
    except (rp.RetargetError, refm.ReferenceArtefactError, ConfigError) as e:
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
                          'workspace_fit': ref.provenance.get('workspace_fit', {}),
                          'timings_s': {k: round(v, 3) for k, v in res.timings.items()}}))
    else:
        print(ref.report)
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
