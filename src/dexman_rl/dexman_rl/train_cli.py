"""Train a skill from a retargeted reference (residual PPO in MuJoCo, paper 3.4):

    ros2 run dexman_rl train REFERENCE_DIR [--skills DIR] [--skill-id ID] [--set section.key=value ...]
        [--budget-min M] [--epochs N] [--resume] [--no-video] [--no-progress] [--json]

Sections/keys are those of config/rl.yaml (env, reward, success, ppo, video, job) and
config/sim.yaml (sim), e.g. ``--set ppo.num_envs=32 --set reward.use_contact=false``. A progress
bar shows epochs, the mean step reward, the frame-0 success of the periodic evaluation and the
ETA. Ctrl-C / SIGTERM stop at the end of the epoch with a checkpoint; ``--resume`` continues.
Writes ``<skills>/<skill_id>/`` (dexman_common.artefacts.skill). Exit status: 0 written, 3
stopped before the end (resumable), 2 bad input, 1 training diverged or unexpected error.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import sys
import threading


def _parse(argv):
    p = argparse.ArgumentParser(prog='ros2 run dexman_rl train', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('reference', help='reference artefact directory (ros2 run dexman_retarget retarget ...)')
    p.add_argument('--skills', default=None, help='skills root (default <DEXMAN_ROOT>/artifacts/skills)')
    p.add_argument('--skill-id', default=None, help='default skill_<reference_id>')
    p.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE', help='configuration override')
    p.add_argument('--budget-min', type=float, default=None, help='wall-clock training budget, minutes (ppo.max_wall_s)')
    p.add_argument('--epochs', type=int, default=None, help='PPO epochs (ppo.max_epochs)')
    p.add_argument('--resume', action='store_true', help='continue the interrupted run of this skill id')
    p.add_argument('--no-video', action='store_true', help='do not render rollout.mp4')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.add_argument('--json', action='store_true', help='print one JSON summary line at the end')
    return p.parse_args(argv)


def default_skills_root() -> pathlib.Path:
    return pathlib.Path(os.environ.get('DEXMAN_ROOT', '.')) / 'artifacts' / 'skills'


class _Bar:
    """tqdm over epochs; postfix: mean step reward, last evaluation success; ETA from the trainer."""

    def __init__(self, enabled: bool):
        self.bar = None
        self.enabled = enabled

    def __call__(self, p: dict) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm
        if self.bar is None:
            self.bar = tqdm(total=p['total_epochs'], initial=p['epoch'] - 1, unit='epoch', dynamic_ncols=True,
                            desc='training', file=sys.stderr)
        self.bar.update(p['epoch'] - self.bar.n)
        post = {'reward': f"{p.get('mean_reward', float('nan')):.3f}"}
        ev = p.get('eval')
        if ev and ev.get('success_rate') is not None:
            post['success'] = f"{ev['success_rate']:.2f}"
        if p.get('eta_s') is not None:
            post['eta'] = f"{p['eta_s'] / 60:.1f}min"
        self.bar.set_postfix(post, refresh=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def main(argv=None) -> int:
    args = _parse(argv)
    from dexman_common.artefacts.reference import ReferenceArtefactError
    from dexman_common.config import ConfigError
    from dexman_rl.core import skill_training as st
    from dexman_rl.core.ppo_trainer import TrainingDivergedError
    from dexman_rl.core.reference_data import ReferenceDataError
    from dexman_sim.errors import SceneInputError
    bar = _Bar(not args.no_progress)
    stop = threading.Event()

    def on_sigint(signum, frame):          # first Ctrl-C: checkpoint at the end of the epoch; second: abort
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print('\ntrain: stopping at the end of this epoch (Ctrl-C again to abort)', file=sys.stderr)
    signal.signal(signal.SIGINT, on_sigint)
    try:
        overrides = st.overrides_from_strings(args.set)
        ppo = overrides.setdefault('ppo', {})
        if args.budget_min is not None:
            if args.budget_min <= 0:
                raise ConfigError('--budget-min must be > 0')
            ppo['max_wall_s'] = args.budget_min * 60.0
        if args.epochs is not None:
            ppo['max_epochs'] = args.epochs
        if args.no_video:
            overrides.setdefault('job', {})['render_video'] = False
        cfgs = st.load_configs(overrides)
        out = st.train_skill(args.reference, args.skills or default_skills_root(), skill_id=args.skill_id,
                             configs=cfgs, resume=args.resume, progress=bar, stop=stop,
                             log=lambda m: print(m, file=sys.stderr))
    except (ConfigError, st.SkillTrainingError, ReferenceDataError, ReferenceArtefactError, SceneInputError,
            FileNotFoundError) as e:
        bar.close()
        print(f'train: {e}', file=sys.stderr)
        return 2
    except TrainingDivergedError as e:
        bar.close()
        print(f'train: {e} (the last good checkpoint is kept; resume with a lower ppo.learning_rate)', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        bar.close()
        print('train: interrupted', file=sys.stderr)
        return 3
    bar.close()
    if out.skill is None:
        print(f'train: stopped ({out.stop_reason}); resume with --resume', file=sys.stderr)
        return 3
    ev = out.skill.evaluation
    summary = {'skill_id': out.skill.skill_id, 'path': str(out.path), 'epochs': out.skill.training['epochs'],
               'env_steps': out.skill.training['env_steps'], 'policy': ev['policy'], 'replay': ev['replay']}
    print(json.dumps(summary) if args.json else
          f"skill {summary['skill_id']} -> {summary['path']}\n  policy: {ev['policy']}\n  replay: {ev['replay']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
