"""Build the G1 + two Shadow hands robot files:  python -m dexman_description.build_robot_cli --out DIR
[--config FILE] [--waist] [--friction F]

Writes DIR/g1_shadow.xml (MJCF), DIR/g1_shadow.urdf (robot_description), DIR/meshes/ (mirrored
left-hand STLs for the URDF) and DIR/manifest.json (sources, versions, licences, hashes), from
the asset packages installed in the venv, with the options of config/retarget.yaml [robot_model]
(``BuildOptions``; --waist and --friction replace theirs). DIR is a build output: do not commit it.
"""
from __future__ import annotations

import argparse
import sys
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m dexman_description.build_robot_cli', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='output folder (created or replaced)')
    p.add_argument('--config', default=None, metavar='FILE',
                   help='settings file, section robot_model (default <config dir>/retarget.yaml)')
    p.add_argument('--waist', action='store_true',
                   help='keep the 3 waist joints (default: torso welded to the fixed pelvis)')
    p.add_argument('--friction', type=float, default=None, help='hand geom friction (default: the config)')
    args = p.parse_args(argv)

    from dexman_common.config import ConfigError, load_section
    from dexman_description.robot_model import AssetsNotFoundError, BuildOptions, build
    try:
        opts = load_section(BuildOptions, args.config)
        if args.waist:
            opts = opts.replace(lock_waist=False)
        if args.friction is not None:
            opts = opts.replace(hand_friction=args.friction)
    except ConfigError as e:
        print(f'build_robot_cli: {e}', file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        res = build(args.out, opts)
    except AssetsNotFoundError as e:
        print(f'build_robot_cli: {e}', file=sys.stderr)
        return 2
    except FileExistsError as e:
        print(f'build_robot_cli: {e}', file=sys.stderr)
        return 3
    c = res.manifest['counts']
    print(f'wrote {res.xml_path}\n      {res.urdf_path}\n      {res.manifest_path}')
    print(f"joints {c['njnt']}, actuators {c['nu']}, bodies {c['nbody']}, geoms {c['ngeom']} "
          f"({time.monotonic() - t0:.1f} s)")
    return 0


if __name__ == '__main__':
    sys.exit(main())
