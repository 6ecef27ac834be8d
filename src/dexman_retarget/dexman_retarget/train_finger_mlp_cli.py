"""Train the finger retargeting MLP (paper 3.3) on Shadow-hand forward kinematics:

    python -m dexman_retarget.train_finger_mlp_cli --out PATH [--samples N --epochs E --seed S]

Samples N joint configurations of the Shadow hand of the G1 model (uniform within the limits plus
a share near natural grasps), computes their fingertips with MuJoCo, trains the 5-layer MLP
(fingertip loss through a differentiable FK plus a small joint MSE), evaluates the fingertip
error in metres on held-out samples of both hands (left = mirrored right) and writes a versioned
checkpoint atomically to PATH. Defaults (100k samples, 30 epochs): about 2.5 minutes on one CPU
thread. The package ships such a checkpoint: dexman_retarget/models/finger_mlp_v1.pt.

Exit codes: 0 ok, 2 a robot asset package is missing (the message names it), 1 other errors.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m dexman_retarget.train_finger_mlp_cli',
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='checkpoint file to write (e.g. finger_mlp.pt)')
    p.add_argument('--samples', type=int, default=100_000, help='training samples (default 100000)')
    p.add_argument('--epochs', type=int, default=30, help='epochs (default 30)')
    p.add_argument('--seed', type=int, default=0, help='seed of data and initialisation (default 0)')
    p.add_argument('--val-samples', type=int, default=20_000, help='held-out samples per hand')
    p.add_argument('--grasp-share', type=float, default=0.5,
                   help='share of samples near natural grasps, the rest uniform (default 0.5)')
    p.add_argument('--batch', type=int, default=512)
    p.add_argument('--lr', type=float, default=3e-3, help='initial Adam learning rate (cosine decay)')
    p.add_argument('--w-q', type=float, default=None, help='joint MSE weight (default 0.1)')
    p.add_argument('--robot', default=None,
                   help='a robot build folder (build_robot_cli --out); default: assemble the '
                        'model in memory from the installed asset packages')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    args = p.parse_args(argv)
    if args.samples < 1000 or args.epochs < 1 or args.val_samples < 100:
        p.error('need --samples >= 1000, --epochs >= 1, --val-samples >= 100')
    if not 0.0 <= args.grasp_share <= 1.0:
        p.error('--grasp-share must be in [0, 1]')

    import torch
    from tqdm import tqdm

    from dexman_retarget.core import finger_dataset as fd
    from dexman_retarget.core import finger_mlp as fm
    from dexman_description import robot_model as rm

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
    train_ds = fd.make_dataset(kin_r, args.samples, args.seed, args.grasp_share)
    val_seed = args.seed + 1_000_003          # a different stream: held-out samples
    val_r = fd.make_dataset(kin_r, args.val_samples, val_seed, args.grasp_share)
    val_l = fd.make_dataset(kin_l, args.val_samples, val_seed + 1, args.grasp_share)
    t_data = time.monotonic() - t0

    cfg = fm.TrainConfig(epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed,
                         **({} if args.w_q is None else {'w_q': args.w_q}))
    bar = None if args.quiet else tqdm(total=args.epochs, desc='finger MLP', unit='epoch',
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
    train_info = {'samples': args.samples, 'val_samples': args.val_samples, 'seed': args.seed,
                  'val_seed': val_seed, 'grasp_share': args.grasp_share,
                  'config': dataclasses.asdict(cfg),
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
