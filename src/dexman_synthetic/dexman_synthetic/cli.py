"""dexman_synth: synthetic demonstrations with exact ground truth (MuJoCo offscreen, CPU).

  dexman_synth generate --task T --object S --seed N --out CASE_DIR [options]
  dexman_synth suite --out DIR [--quick] [--jobs N] [--only NAME ...]
  dexman_synth preview CASE_DIR --out PNG [--frame K]
  dexman_synth demo CASE_DIR --out DIR [--id ID]   exact demonstration artefact in the robot world
  dexman_synth list

Bad arguments print one line and exit with status 2; a failed generation exits with status 1.
"""
from __future__ import annotations

import argparse
import json
import sys


class _Parser(argparse.ArgumentParser):
    def error(self, message):            # one clear line, exit 2
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f'expected a positive integer, got {v}')
    return v


def build_parser() -> argparse.ArgumentParser:
    from .core.objects import SHAPES
    from .core.tasks import TASKS
    p = _Parser(prog='dexman_synth', description='Synthetic demonstrations with exact ground truth.')
    sub = p.add_subparsers(dest='cmd', parser_class=_Parser)
    g = sub.add_parser('generate', help='render one demonstration into a case directory')
    g.add_argument('--task', required=True, choices=TASKS)
    g.add_argument('--object', required=True, choices=SHAPES, dest='shape')
    g.add_argument('--seed', required=True, type=int)
    g.add_argument('--out', required=True, help='case directory (bag/ and ground_truth/ are written in it)')
    g.add_argument('--depth', action=argparse.BooleanOptionalAction, default=False,
                   help='publish /camera/depth/image_raw (32FC1); default off, like a generated video')
    g.add_argument('--depth-noise', type=float, default=0.0, help='Gaussian depth noise sigma relative to depth')
    g.add_argument('--depth-holes', type=int, default=0, help='random hole blobs per depth frame')
    g.add_argument('--hole-value', choices=('nan', 'zero'), default='nan')
    g.add_argument('--relative-depth-chunk', type=int, default=0,
                   help='publish relative depth: an unknown affine map per chunk of K frames (0 = metric)')
    g.add_argument('--relative-depth-overlap', type=int, default=None, help='frames shared by consecutive chunks (default K/4)')
    g.add_argument('--drop-rate', type=float, default=0.0, help='probability that a camera frame is dropped')
    g.add_argument('--width', type=_positive_int, default=640)
    g.add_argument('--height', type=_positive_int, default=480)
    g.add_argument('--fps', type=float, default=30.0)
    g.add_argument('--duration', type=float, default=None, help='seconds (default 3.5-4 s per task)')
    g.add_argument('--posture', choices=('seated', 'standing'), default=None, help='default: random per seed')
    g.add_argument('--quiet', action='store_true', help='no progress bar')
    s = sub.add_parser('suite', help='generate the standard benchmark suite into a folder')
    s.add_argument('--out', required=True)
    s.add_argument('--quick', action='store_true', help='320x240 at 15 fps')
    s.add_argument('--jobs', type=_positive_int, default=1)
    s.add_argument('--only', nargs='+', default=None, metavar='NAME', help='generate only these suite cases')
    s.add_argument('--quiet', action='store_true')
    v = sub.add_parser('preview', help='draw the ground truth over one frame of a case')
    v.add_argument('case_dir')
    v.add_argument('--out', required=True, help='PNG file to write')
    v.add_argument('--frame', type=int, default=None, help='frame index (default: the middle frame)')
    b = sub.add_parser('prompt', help='print the first-frame object boxes [x0, y0, x1, y1, ...] of a case '
                       '(the segmentation prompt a user would draw)')
    b.add_argument('case_dir')
    b.add_argument('--pad', type=int, default=3, help='pixels around the visible object')
    d = sub.add_parser('demo', help='write the exact demonstration of a case, in the robot world '
                       '(DIR/<id>/, for retargeting and training on ground truth)')
    d.add_argument('case_dir')
    d.add_argument('--out', required=True, help='demonstration root: writes OUT/<id>/')
    d.add_argument('--id', default=None, help='demonstration id (default gt_<case_id>)')
    sub.add_parser('list', help='list tasks, objects and the suite cases')
    return p


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.cmd is None:
            raise _UsageError('a command is required: generate, suite, preview, prompt, demo or list')
        return _run(args)
    except _UsageError as e:
        print(f'dexman_synth: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('dexman_synth: interrupted', file=sys.stderr)
        return 130


def _run(args) -> int:
    if args.cmd == 'list':
        from .core.objects import SHAPES
        from .core.suite import SUITE
        from .core.tasks import TASKS
        print('tasks:   ' + ' '.join(TASKS))
        print('objects: ' + ' '.join(SHAPES))
        print('suite:   ' + ' '.join(c.name for c in SUITE))
        return 0
    if args.cmd == 'prompt':
        from .core.ground_truth import GroundTruthError, load
        try:
            print(json.dumps(load(args.case_dir).prompt_boxes(pad=args.pad)))
        except (GroundTruthError, OSError) as e:
            raise _UsageError(str(e)) from None
        return 0
    if args.cmd == 'demo':
        from dexman_common.artefacts import demonstration as dm

        from .core.demo_alignment import demonstration_from_ground_truth
        from .core.ground_truth import GroundTruthError, load
        try:
            demo, meshes, _ = demonstration_from_ground_truth(load(args.case_dir), args.id)
            print(dm.save(demo, args.out, meshes))
        except (GroundTruthError, OSError, dm.DemonstrationError) as e:
            raise _UsageError(str(e)) from None
        return 0
    if args.cmd == 'preview':
        import pathlib

        from .core.ground_truth import GroundTruthError
        from .core.preview import write_preview
        if not pathlib.Path(args.case_dir).is_dir():
            raise _UsageError(f'{args.case_dir} is not a directory')
        try:
            out = write_preview(args.case_dir, args.out, args.frame)
        except (GroundTruthError, ValueError) as e:
            raise _UsageError(str(e)) from None
        print(out)
        return 0
    if args.cmd == 'generate':
        from .core.degradations import DegradationConfig
        from .core.generate import GenerateOptions, generate
        deg = DegradationConfig(args.depth_noise, args.depth_holes, args.hole_value, args.relative_depth_chunk,
                                args.relative_depth_overlap, args.drop_rate)
        opts = GenerateOptions(args.task, args.shape, args.seed, args.width, args.height, args.fps, args.duration,
                               args.depth, args.posture, deg)
        try:
            opts.validate()
        except ValueError as e:
            raise _UsageError(str(e)) from None
        try:
            summary = generate(opts, args.out, progress=not args.quiet)
        except RuntimeError as e:
            print(f'dexman_synth: generation failed: {e}', file=sys.stderr)
            return 1
        print(json.dumps({k: v for k, v in summary.items() if k != 'info'}))
        return 0
    if args.cmd == 'suite':
        from .core.suite import run_suite
        try:
            manifest = run_suite(args.out, quick=args.quick, jobs=args.jobs, only=args.only,
                                 progress=not args.quiet)
        except ValueError as e:
            raise _UsageError(str(e)) from None
        except RuntimeError as e:
            print(f'dexman_synth: suite failed: {e}', file=sys.stderr)
            return 1
        print(json.dumps({'out': str(args.out), 'cases': len(manifest['cases']), 'seconds': manifest['seconds']}))
        return 0
    raise _UsageError(f'unknown command {args.cmd}')


if __name__ == '__main__':
    sys.exit(main())
