"""Train the finger retargeting MLP (paper 3.3) on Shadow-hand forward kinematics:

    python -m dexman_retarget.train_finger_mlp_cli --out PATH [--config FILE] [--samples N --epochs E --seed S]

Samples N joint configurations of the Shadow hand of the G1 model (uniform within the limits plus
a share near natural grasps), computes their fingertips with MuJoCo, trains the 5-layer MLP
(fingertip loss through a differentiable FK plus a small joint MSE), evaluates the fingertip
error in metres on held-out samples of both hands (left = mirrored right) and writes a versioned
checkpoint atomically to PATH. The defaults are config/retarget.yaml [finger_mlp]
(``finger_mlp.TrainConfig``, the settings of the shipped checkpoint
dexman_retarget/models/finger_mlp_v1.pt); an option given here replaces its value. Training time:
docs/retargeting.md.

Exit codes: 0 ok, 2 a robot asset package is missing (the message names it), 1 other errors.
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m dexman_retarget.train_finger_mlp_cli',
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='checkpoint file to write (e.g. finger_mlp.pt)')
    p.add_argument('--config', default=None, metavar='FILE',
                   help='settings file, section finger_mlp (default <config dir>/retarget.yaml)')
    p.add_argument('--samples', type=int, default=None, help='training samples')
    p.add_argument('--epochs', type=int, default=None, help='epochs')
    p.add_argument('--seed', type=int, default=None, help='seed of data and initialisation')
    p.add_argument('--val-samples', type=int, default=None, help='held-out samples per hand')
    p.add_argument('--grasp-share', type=float, default=None,
                   help='share of samples near natural grasps, the rest uniform')
    p.add_argument('--batch', type=int, default=None)
    p.add_argument('--lr', type=float, default=None, help='initial Adam learning rate (cosine decay)')
    p.add_argument('--w-q', type=float, default=None, help='joint MSE weight')
    p.add_argument('--robot', default=None,
                   help='a robot build folder (build_robot_cli --out); default: assemble the '
                        'model in memory from the installed asset packages')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    args = p.parse_args(argv)

    import torch
    from tqdm import tqdm

    from dexman_common.config import ConfigError, load_section
    from dexman_retarget.core import finger_dataset as fd
    from dexman_retarget.core import finger_mlp as fm
    from dexman_description import robot_model as rm

    given = {k: v for k, v in (('samples', args.samples), ('epochs', args.epochs), ('seed', args.seed),
                               ('val_samples', args.val_samples), ('grasp_share', args.grasp_share),
                               ('batch', args.batch), ('lr', args.lr), ('w_q', args.w_q)) if v is not None}
    try:
        cfg = load_section(fm.TrainConfig, args.config).replace(**given)
    except ConfigError as e:
        p.error(str(e))

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.monotonic()
    try:
        model = rm.load_model(args.robot) if args.robot else rm.build_model()
    except rm.AssetsNotFoundError as e:
        print(f'train_finger_mlp_cli: {e}', file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:
        print(f'train_finger_mlp_cli: cannot load the robot model: {e}', file=sys.stderr)
        return 1
    kin_r = fd.ShadowHandKinematics(model, 'right')
    kin_l = fd.ShadowHandKinematics(model, 'left')
    train_ds = fd.make_dataset(kin_r, cfg.samples, cfg.seed, cfg.grasp_share, cfg.grasp_noise)
    val_seed = cfg.seed + 1_000_003           # a different stream: held-out samples
    val_r = fd.make_dataset(kin_r, cfg.val_samples, val_seed, cfg.grasp_share, cfg.grasp_noise)
    val_l = fd.make_dataset(kin_l, cfg.val_samples, val_seed + 1, cfg.grasp_share, cfg.grasp_noise)
    t_data = time.monotonic() - t0

    bar = None if args.quiet else tqdm(total=cfg.epochs, desc='finger MLP', unit='epoch',
                                       file=sys.stderr)

    def progress(ep, n, st):
        if bar is not None:
            bar.set_postfix(tip_rms_mm=f"{st['tip_rms_m'] * 1e3:.2f}", refresh=False)
            bar.update(1)
    try:
        net, hist = fm.train(kin_r, train_ds, cfg, progress=progress)
    finally:
        if bar is not None:
            bar.close()

    metrics = {'heldout_right': fm.evaluate(net, kin_r, val_r),
               'heldout_left': fm.evaluate(net, kin_l, val_l),
               'inference': fm.time_inference(net),
               'data_seconds': round(t_data, 2),
               'train_seconds': round(hist['train_seconds'], 1),
               'final_train_tip_rms_m': hist['epochs'][-1]['tip_rms_m']}
    train_info = {'samples': cfg.samples, 'val_samples': cfg.val_samples, 'seed': cfg.seed,
                  'val_seed': val_seed, 'grasp_share': cfg.grasp_share,
                  'config': cfg.to_dict(),
                  'threads': torch.get_num_threads(),
                  'robot': str(args.robot) if args.robot else 'rm.build_model() (in memory)',
                  'asset_versions': _asset_versions()}
    try:
        path = fm.save_checkpoint(args.out, net, kin_r, metrics, train_info)
    except OSError as e:
        print(f'train_finger_mlp_cli: cannot write {args.out}: {e}', file=sys.stderr)
        return 1
    r, l_ = metrics['heldout_right'], metrics['heldout_left']
    print(f'wrote {path}')
    print(f"held-out fingertip error: right mean {r['tip_mean_m'] * 1e3:.2f} mm "
          f"(p95 {r['tip_p95_m'] * 1e3:.2f}, max {r['tip_max_m'] * 1e3:.1f}), left mean "
          f"{l_['tip_mean_m'] * 1e3:.2f} mm; train {metrics['train_seconds']:.0f} s, "
          f"inference {metrics['inference']['single_frame_us']:.0f} us/frame")
    print(json.dumps({'out': str(path), 'metrics': metrics}, sort_keys=True))
    return 0


def _asset_versions() -> dict:
    try:
        from dexman_description.robot_model import assets
        return {'gymnasium-robotics': assets.shadow_source().version}
    except Exception:  # noqa: BLE001 - provenance only
        return {}


if __name__ == '__main__':
    sys.exit(main())
