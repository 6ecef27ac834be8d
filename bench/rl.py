"""Residual RL benchmark (paper 3.4, 4.2, Table 3 direction) on ground-truth demonstrations.

    source env.sh
    python bench/rl.py [--quick] [--budget-min 30] [--cases pick_place_box,pick_place_cylinder,bimanual_lift_slab]
                       [--variants full,no_contact,no_object] [--out data/bench_rl]

No perception in the loop: each case is a synthetic demonstration (dexman_synthetic, exact ground
truth) put into the robot world (``dexman_synth demo``), retargeted with the default pipeline
(``dexman_retarget``), then per case:

- the replay baseline (zero residual) evaluated as paper 4.2 (10 rollouts from frame 0);
- for each variant (full reward; without the contact reward; without the object reward), a
  residual PPO policy trained for the same wall-clock budget, evaluated the same way: success
  rate, E_r, E_t (over successful rollouts), training wall time, env steps, epochs;
- the env throughput against raw ``mj_step`` of the same scene on the same threads.

``--quick`` (< 1 min): the throughput ratio and 3 PPO epochs on one short case.
The last line of output is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
CASES = {'pick_place_box': ('pick_place', 'box', 0), 'pick_place_cylinder': ('pick_place', 'cylinder', 1),
         'bimanual_lift_slab': ('bimanual_lift', 'slab', 4)}
VARIANTS = {'full': {}, 'no_contact': {'reward': {'use_contact': False}},
            'no_object': {'reward': {'use_object': False}}}


def prepare_reference(name: str, out: pathlib.Path, duration: float | None) -> tuple[pathlib.Path, dict]:
    """Synthetic case -> exact demonstration in the robot world -> reference (cached in ``out``)."""
    from dexman_common.artefacts import reference as refm
    from dexman_retarget.core import retarget_pipeline as rp
    from dexman_synthetic.core import demo_alignment as da
    from dexman_synthetic.core import ground_truth as gtm
    from dexman_synthetic.core.generate import GenerateOptions, generate
    task, shape, seed = CASES[name]
    tag = name + (f'_{duration:g}s' if duration else '')
    ref_dir = out / 'refs' / tag
    if not (ref_dir / refm.META_NAME).is_file():
        case = out / 'cases' / tag
        if not (case / 'ground_truth' / 'meta.json').is_file():
            kw = {'duration': duration} if duration else {}
            generate(GenerateOptions(task, shape, seed, width=160, height=120, **kw), case, progress=False)
        demo, meshes, _ = da.demonstration_from_ground_truth(gtm.load(case), tag)
        model_dir, _ = rp.ensure_robot_model(rp.default_robot_model_dir())
        res = rp.Retargeter(model_dir, rp.RetargetOptions(progress=False)).run(demo, meshes, tag)
        refm.save(res.reference, out / 'refs', res.meshes)
    ref = refm.load(ref_dir)
    unreach = (~ref.ik_reachable & ref.ik_has_target)
    return ref_dir, {'frames': ref.n_frames, 'objects': len(ref.objects),
                     'unreachable_fraction': [float(unreach[h].mean()) for h in range(2)]}


def throughput(ref_dir: pathlib.Path, envs: int, steps: int) -> dict:
    from dexman_rl.core import skill_training as st
    from dexman_rl.core.reference_data import load
    from dexman_rl.core.throughput import measure
    cfgs = st.load_configs()
    ref = load(ref_dir)
    env = st.make_env(ref, cfgs, envs, train=True, model_dir=cfgs.sim.robot_model_path())
    try:
        return measure(env, steps=steps, repeats=1)
    finally:
        env.close()


def replay_baseline(ref_dir: pathlib.Path) -> dict:
    from dexman_rl.core import skill_training as st
    from dexman_rl.core.evaluate import evaluate
    from dexman_rl.core.reference_data import load
    cfgs = st.load_configs()
    env = st.make_env(load(ref_dir), cfgs, cfgs.job.eval_envs, train=False, model_dir=cfgs.sim.robot_model_path())
    try:
        return st.summary_dict(evaluate(env, None))
    finally:
        env.close()


def train_variant(ref_dir: pathlib.Path, out: pathlib.Path, name: str, variant: str, budget_s: float | None,
                  epochs: int | None, extra: dict | None = None) -> dict:
    from dexman_rl.core import skill_training as st
    over = json.loads(json.dumps(VARIANTS[variant]))
    ppo = over.setdefault('ppo', {})
    if budget_s:
        ppo['max_wall_s'] = budget_s
        ppo['max_epochs'] = 100000
    if epochs:
        ppo['max_epochs'] = epochs
    over.setdefault('job', {})['render_video'] = False
    for k, v in (extra or {}).items():
        over.setdefault(k, {}).update(v)
    cfgs = st.load_configs(over)
    t0 = time.perf_counter()
    res = st.train_skill(ref_dir, out / 'skills', skill_id=f'{name}_{variant}', configs=cfgs,
                         log=lambda m: print(m, file=sys.stderr),
                         progress=lambda p: print(f"  epoch {p['epoch']} reward {p['mean_reward']:.3f} "
                                                  f"({p['elapsed_s']:.0f} s)", file=sys.stderr)
                         if p['epoch'] % 25 == 0 else None)
    sk = res.skill
    return {'policy': sk.evaluation['policy'], 'train_wall_s': time.perf_counter() - t0,
            'epochs': sk.training['epochs'], 'env_steps': sk.training['env_steps'],
            'final_mean_reward': sk.training['final_mean_reward'], 'skill': str(res.path)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--budget-min', type=float, default=30.0, help='training wall-clock budget per variant, minutes')
    ap.add_argument('--cases', default=','.join(CASES))
    ap.add_argument('--variants', default=','.join(VARIANTS))
    ap.add_argument('--out', default=str(ROOT / 'data' / 'bench_rl'))
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    t_all = time.perf_counter()
    result: dict = {'bench': 'rl', 'quick': args.quick}
    if args.quick:
        ref_dir, info = prepare_reference('pick_place_box', out, duration=1.5)
        result['case'] = {'name': 'pick_place_box_1.5s', **info}
        result['throughput'] = throughput(ref_dir, envs=64, steps=30)
        result['ppo'] = train_variant(ref_dir, out, 'quick', 'full', None, 3,
                                      extra={'ppo': {'num_envs': 16, 'minibatch_size': 256},
                                             'job': {'eval_envs': 5}, 'success': {'rollouts_per_sequence': 5}})
    else:
        cases = [c for c in args.cases.split(',') if c]
        variants = [v for v in args.variants.split(',') if v]
        bad = [c for c in cases if c not in CASES] + [v for v in variants if v not in VARIANTS]
        if bad:
            ap.error(f'unknown case/variant {bad}; cases {list(CASES)}, variants {list(VARIANTS)}')
        result['budget_min'] = args.budget_min
        result['cases'] = {}
        for i, name in enumerate(cases):
            ref_dir, info = prepare_reference(name, out, duration=None)
            entry = {**info, 'replay': replay_baseline(ref_dir)}
            if i == 0:
                result['throughput'] = throughput(ref_dir, envs=64, steps=60)
            for v in variants:
                print(f'== {name} / {v}: {args.budget_min} min', file=sys.stderr)
                entry[v] = train_variant(ref_dir, out, name, v, args.budget_min * 60.0, None)
            result['cases'][name] = entry
            print(json.dumps({name: entry}), file=sys.stderr)
    result['wall_s'] = time.perf_counter() - t_all
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
