"""Trackability of retargeted references: can the MuJoCo PD controllers of the RL env follow the arm?

    source env.sh
    python bench/retarget_trackability.py [--quick] [--cases pick_place_box,pick_place_cylinder,bimanual_lift_slab]
                                          [--out data/bench_rl] [--refs DIR ...] [--rollouts 10]

The references are the RL benchmark's (``bench/rl.py``'s ``prepare_reference``: synthetic case ->
exact demonstration in the robot world -> the default retargeting pipeline; cached in
``<out>/refs/<case>``, delete that folder to rebuild after a retargeting change). ``--refs``
measures reference directories given directly instead. ``--quick``: pick_place_box only.

Per reference:

- **kinematics** (the reference alone, 30 Hz): the largest arm joint speed |dq|/dt (rad/s), the
  frames whose fastest arm joint exceeds 5 rad/s, the largest per-frame change per joint;
- **contacts at the reference joint positions**: the RL env's scene (robot + table + objects, the
  objects at their reference poses) put into each frame's reference configuration, ``mj_forward``,
  and every contact of an arm (its links and hand, a subtree of ``{side}_shoulder_pitch_link``)
  with another robot body (torso, head, pelvis, waist, the other arm: ``self``) or with the table
  (``table``); frames with each, the body pairs with their frame counts and deepest penetration;
- **replay** (zero residual, the RL env in evaluation mode, ``rollouts`` perturbed starts from
  frame 0): success rate and the per-rollout episode length as ``dexman_rl.core.evaluate`` scores
  them; then the same starts with early termination switched off (the whole clip is played) for
  the tracking figures: arm tracking error |q - q_ref| (max over the 14 arm joints, rad: mean and
  max over steps and rollouts), the object position error per step (m: max over the clip) and at
  the last frame (the means over the rollouts of both per step are in the JSON too), the mean
  contact reward, and the steps with an arm in contact with the robot's own body in the
  simulation (env 0).

Human-readable lines on stderr; the LAST line of stdout is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEED_LIMIT = 5.0          # rad/s: the frames counted as "fast" (the brief's threshold)
SIDES = ('left', 'right')


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def arm_kinematics(ref) -> dict:
    """Arm joint speeds of a reference (``dexman_common.artefacts.reference.Reference``)."""
    from dexman_description import robot_model as rm
    names = rm.arm_joints('left') + rm.arm_joints('right')
    q = ref.joint_positions[:, [ref.joint_names.index(n) for n in names]]
    v = np.abs(np.diff(q, axis=0)) * ref.frame_rate
    fast = v.max(axis=1) > SPEED_LIMIT
    return {'max_arm_speed': round(float(v.max()), 3),
            'fast_frames': int(fast.sum()),
            'max_speed_per_joint': {n: round(float(x), 2) for n, x in zip(names, v.max(axis=0))}}


class ContactClassifier:
    """Which contacts of a scene count: an arm (subtree of a shoulder) against another robot body
    (``self``) or the table (``table``)."""

    def __init__(self, scene):
        m = scene.model
        self.model = m
        robot = set(int(g) for g in scene.robot_geom_ids)
        self.robot_geom = np.zeros(m.ngeom, bool)
        self.robot_geom[list(robot)] = True
        self.table_geom = int(scene.table_geom_id)
        self.side_of_body = np.full(m.nbody, -1)
        roots = [m.body(f'{s}_shoulder_pitch_link').id for s in SIDES]
        for b in range(m.nbody):
            a = b
            while a > 0:
                if a in roots:
                    self.side_of_body[b] = roots.index(a)
                    break
                a = int(m.body_parentid[a])

    def classify(self, data) -> list[tuple[str, str, str, float]]:
        """[(kind, arm body, other body, depth m)] of the counted contacts in ``data``."""
        m = self.model
        out = []
        for c in data.contact[:data.ncon]:
            g1, g2 = int(c.geom1), int(c.geom2)
            for a, b in ((g1, g2), (g2, g1)):
                if not self.robot_geom[a]:
                    continue
                ba, bb = int(m.geom_bodyid[a]), int(m.geom_bodyid[b])
                side = self.side_of_body[ba]
                if side < 0:
                    continue
                if b == self.table_geom:
                    kind = 'table'
                elif self.robot_geom[b] and self.side_of_body[bb] != side:
                    if self.side_of_body[bb] >= 0 and a > b:
                        continue         # arm-arm: count the pair once
                    kind = 'self'
                else:
                    continue
                out.append((kind, m.body(ba).name, m.body(bb).name, float(-c.dist)))
                break
        return out


def reference_contacts(env) -> dict:
    """Contacts at the reference configuration of every frame (module doc)."""
    import mujoco
    m = env.model
    d = mujoco.MjData(m)
    cl = ContactClassifier(env.scene)
    frames = {'self': set(), 'table': set()}
    pairs: dict[str, dict] = {}
    for t in range(env.T):
        d.qpos[:] = env.qpos_ref[t]
        mujoco.mj_forward(m, d)
        for kind, a, b, depth in cl.classify(d):
            frames[kind].add(t)
            key = f'{kind}: {a} / {b}'
            p = pairs.setdefault(key, {'frames': set(), 'depth_m': 0.0})
            p['frames'].add(t)
            p['depth_m'] = max(p['depth_m'], depth)
    return {'self_contact_frames': len(frames['self']), 'table_contact_frames': len(frames['table']),
            'first_self_contact_frame': min(frames['self']) if frames['self'] else None,
            'pairs': {k: {'frames': len(v['frames']), 'first': min(v['frames']),
                          'depth_mm': round(1e3 * v['depth_m'], 1)} for k, v in sorted(pairs.items())}}


def replay(ref_data, rollouts: int) -> dict:
    """Zero-residual replay figures (module doc)."""
    from dexman_rl.core import skill_training as st
    from dexman_rl.core.evaluate import collect_rollouts
    from dexman_rl.core.success import summarise
    cfgs = st.load_configs()
    model_dir = cfgs.sim.robot_model_path()
    env = st.make_env(ref_data, cfgs, rollouts, train=False, model_dir=model_dir)
    try:
        rs = collect_rollouts(env, None, rollouts)
        summ = st.summary_dict(summarise(rs))
        out = {'success_rate': summ.get('success_rate'), 'episode_lengths': [int(r.length) for r in rs],
               'horizon': int(env.horizon)}
    finally:
        env.close()
    # the whole clip, no early termination: tracking figures
    env = st.make_env(ref_data, cfgs, rollouts, train=False, model_dir=model_dir,
                       env_overrides={'term_pos_error': 1e6, 'term_rot_error': 1e6})
    try:
        env.set_mode(False)
        env.reset()
        cl = ContactClassifier(env.scene)
        arm_adr = env.ik.qpos_adr.ravel()
        zero = np.zeros((env.num_envs, env.act_dim), np.float32)
        arm_err, obj_err, contact_r, self_steps = [], [], [], 0
        per_joint = np.zeros(arm_adr.size)
        for _ in range(env.horizon):
            _, _, done, info = env.step(zero)
            if done.any():          # the time limit: env.qpos is the reset state now
                break
            e = np.abs(env.qpos[:, arm_adr] - env.ik.q_ref[env.frame].reshape(env.num_envs, -1))
            per_joint = np.maximum(per_joint, e.max(axis=0))
            arm_err.append(e.max(axis=1))
            obj_err.append(env.object_errors()[0].max(axis=1))
            contact_r.append(info['reward_terms']['contact'])
            self_steps += any(k == 'self' for k, *_ in cl.classify(env.datas[0]))
        # the last frame: the state before the auto-reset is gone; use the last recorded step
        arm_err, obj_err = np.asarray(arm_err), np.asarray(obj_err)
        from dexman_description import robot_model as rm
        names = rm.arm_joints('left') + rm.arm_joints('right')
        worst = int(np.argmax(per_joint))
        out.update({
            'arm_tracking_err_mean': round(float(arm_err.mean()), 4),
            'arm_tracking_err_max': round(float(arm_err.max()), 4),
            'arm_tracking_worst_joint': names[worst],
            'object_err_max': round(float(obj_err.max()), 4),
            'object_err_end': round(float(obj_err[-1].mean()), 4),
            'object_err_end_steps': len(obj_err),
            'contact_reward_mean': round(float(np.mean(contact_r)), 4),
            'sim_self_contact_steps_env0': int(self_steps),
            'arm_tracking_err_per_step': [round(float(x), 4) for x in arm_err.mean(axis=1)],
            'object_err_per_step': [round(float(x), 4) for x in obj_err.mean(axis=1)]})
    finally:
        env.close()
    return out


def measure(ref_dir: pathlib.Path, rollouts: int) -> dict:
    from dexman_common.artefacts import reference as refm
    from dexman_rl.core import skill_training as st
    from dexman_rl.core.reference_data import load
    ref = refm.load(ref_dir)
    cfgs = st.load_configs()
    ref_data = load(ref_dir, max_unreachable_fraction=cfgs.env.max_unreachable_fraction,
                    penetration_tolerance=cfgs.sim.penetration_tolerance,
                    max_table_tilt_deg=cfgs.sim.table_max_tilt_deg)
    ik_cfg = ref.provenance.get('config', {}).get('ik', {})
    out = {'frames': ref.n_frames, 'max_joint_speed_setting': ik_cfg.get('max_joint_speed'),
           'workspace_fit_delta_m': ref.provenance.get('workspace_fit', {}).get('delta_m'),
           'retarget_s': ref.provenance.get('timings_s', {}).get('total_s'), **arm_kinematics(ref)}
    unreach = ~ref.ik_reachable & ref.ik_has_target
    out['ik_unreachable_frames'] = [int(u.sum()) for u in unreach]
    pe = np.where(ref.ik_has_target, ref.ik_pos_err, np.nan)
    out['ik_pos_err_max_mm'] = round(1e3 * float(np.nanmax(pe)), 2) if np.isfinite(pe).any() else None
    env = st.make_env(ref_data, cfgs, 1, train=False, model_dir=cfgs.sim.robot_model_path())
    try:
        out['reference_contacts'] = reference_contacts(env)
    finally:
        env.close()
    out['replay'] = replay(ref_data, rollouts)
    return out


def summary_line(name: str, r: dict) -> str:
    rc, rp = r['reference_contacts'], r['replay']
    return (f'{name}: max arm speed {r["max_arm_speed"]:.2f} rad/s, {r["fast_frames"]} frames > {SPEED_LIMIT:g} rad/s; '
            f'reference self-contact frames {rc["self_contact_frames"]}, table {rc["table_contact_frames"]}; '
            f'replay success {rp["success_rate"]}, arm tracking err mean {rp["arm_tracking_err_mean"]:.3f} / max '
            f'{rp["arm_tracking_err_max"]:.3f} rad ({rp["arm_tracking_worst_joint"]}), object err max '
            f'{rp["object_err_max"]:.3f} m, end {rp["object_err_end"]:.3f} m, '
            f'contact reward {rp["contact_reward_mean"]:.3f}')


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--quick', action='store_true', help='pick_place_box only')
    ap.add_argument('--cases', default='pick_place_box,pick_place_cylinder,bimanual_lift_slab')
    ap.add_argument('--out', default=str(ROOT / 'data' / 'bench_rl'))
    ap.add_argument('--refs', nargs='*', default=None, help='reference directories to measure instead')
    ap.add_argument('--rollouts', type=int, default=10)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    result: dict = {'bench': 'retarget_trackability', 'quick': args.quick, 'cases': {}}
    if args.refs:
        dirs = {pathlib.Path(p).name: pathlib.Path(p) for p in args.refs}
    else:
        sys.path.insert(0, str(ROOT / 'bench'))
        import rl as bench_rl
        cases = ['pick_place_box'] if args.quick else [c for c in args.cases.split(',') if c]
        bad = [c for c in cases if c not in bench_rl.CASES]
        if bad:
            ap.error(f'unknown case(s) {bad}; cases: {list(bench_rl.CASES)}')
        dirs = {}
        for c in cases:
            dirs[c], _ = bench_rl.prepare_reference(c, pathlib.Path(args.out), None)
    for name, d in dirs.items():
        r = measure(d, args.rollouts)
        result['cases'][name] = r
        log(summary_line(name, r))
    result['wall_s'] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
