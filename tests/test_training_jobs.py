"""The trainer node's job core (dexman_rl.core.training_jobs), ROS-free: request validation with
the exact reasons, the queue (one job at a time, FIFO, interrupted jobs first), cancel of queued
and running jobs, the journal across a restart (resume from the checkpoint, epochs lost), the
child's death with its parent, and one real child that retargets a demonstration and trains.

Most tests run the manager on a stand-in child (a small script given as the manager's `python`):
it reads the job journal, writes a checkpoint marker per epoch and the skill at the end, speaks the
child's event protocol and exit codes; its behaviour is chosen by the job's ppo.seed."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from dexman_rl.core import training_jobs as tj

FAKE_CHILD = textwrap.dedent('''\
    import json, os, pathlib, signal, sys, time
    journal, fd = pathlib.Path(sys.argv[3]), int(sys.argv[5])
    job = json.loads(journal.read_text())
    ev = os.fdopen(fd, 'w', buffering=1)
    def emit(event, **kw):
        ev.write(json.dumps(dict(event=event, **kw)) + '\\n')
    stop = []
    mode = job['config']['ppo']['seed']          # 1 normal, 2 bad input, 3 ignores SIGTERM
    signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == 3 else (lambda *a: stop.append(1)))
    root, sid = pathlib.Path(job['skills_root']), job['skill_id']
    ck = root / '.work' / sid / 'checkpoints'
    ck.mkdir(parents=True, exist_ok=True)
    if mode == 2:
        emit('done', status='failed', message='reference gt: the left wrist target is unreachable')
        sys.exit(2)
    start = json.loads((ck / 'last.json').read_text())['epoch'] if job.get('resume') else 0
    total = job['config']['ppo']['max_epochs']
    emit('phase', phase='training', text='training from epoch %d' % start)
    for e in range(start + 1, total + 1):
        time.sleep(float(os.environ.get('FAKE_EPOCH_S', '0.15')))
        (ck / 'last.pth').write_bytes(b'x')
        (ck / 'last.json').write_text(json.dumps({'epoch': e}))
        emit('progress', progress={'epoch': e, 'total_epochs': total, 'env_steps': 128 * e, 'mean_reward': 0.5,
                                   'reward_terms': {'contact': 0.1, 'object': 0.2, 'imitation': 0.2},
                                   'elapsed_s': 0.1, 'eta_s': 0.1 * (total - e), 'checkpoint': str(ck / 'last.pth')})
        if stop:
            emit('done', status='stopped', message='stopped (sigterm) with a checkpoint')
            sys.exit(3)
    (root / sid).mkdir(parents=True)
    (root / sid / 'skill.json').write_text('{}')
    emit('done', status='written', message='written', result={'skill_id': sid, 'skill_dir': str(root / sid),
         'policy': {'success_rate': 0.5, 'e_r': 0.1, 'e_t': 0.01, 'count': 2}})
''')


@pytest.fixture
def roots(tmp_path):
    refs, demos = tmp_path / 'refs', tmp_path / 'demos'
    for d, marker in ((refs / 'ref_a', 'reference.json'), (demos / 'demo_a', 'demonstration.json'),
                      (refs / 'both', 'reference.json'), (demos / 'both', 'demonstration.json')):
        d.mkdir(parents=True)
        (d / marker).write_text('{}')
    fake = tmp_path / 'fake_python'
    fake.write_text(f'#!{sys.executable}\n' + FAKE_CHILD)
    fake.chmod(0o755)
    return tmp_path, tj.SourceResolver(refs, demos), str(fake)


def _job(resolver, ident='ref_a', epochs=5, seed=1, **budget):
    pairs = [('ppo.max_epochs', epochs), ('ppo.seed', seed)]
    return tj.validate_request(ident, pairs, resolver, tj.Budget(default_s=600.0, **budget))


def _wait(cond, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_overrides_and_validation_reasons(roots):
    tmp, res, _ = roots
    assert tj.overrides_from_pairs([('ppo.max_epochs', 6), ('env.residual.pos_scale', 0.01), ('env.threads', 1)]) \
        == {'ppo': {'max_epochs': 6}, 'env': {'residual': {'pos_scale': 0.01}, 'threads': 1}}
    for pairs, why in (([('max_epochs', 3)], "malformed override name 'max_epochs'"),
                       ([('ppo.', 3)], 'malformed override name'), ([('ppo.max-epochs', 3)], 'malformed'),
                       ([('ppo.seed', 1), ('ppo.seed', 2)], "override 'ppo.seed' given twice"),
                       ([('env.residual', 1), ('env.residual.pos_scale', 0.1)], 'conflicts')):
        with pytest.raises(tj.JobRejected, match=why):
            tj.overrides_from_pairs(pairs)

    # sources: a reference wins over a demonstration of the same id; announced ones are found
    assert res.resolve('ref_a').kind == 'reference' and res.resolve('demo_a').kind == 'demonstration'
    assert res.resolve('both').kind == 'reference'
    elsewhere = tmp / 'elsewhere' / 'demo_b'
    elsewhere.mkdir(parents=True)
    (elsewhere / 'demonstration.json').write_text('{}')
    with pytest.raises(tj.JobRejected, match=r"unknown demonstration or reference 'demo_b': no .*refs/demo_b/"
                                             r"reference.json, no .*demos/demo_b/demonstration.json"):
        res.resolve('demo_b')
    res.announce('demonstration', 'demo_b', elsewhere)
    assert res.resolve('demo_b') == tj.Source('demonstration', 'demo_b', elsewhere.resolve())
    with pytest.raises(tj.JobRejected, match='invalid id'):
        res.resolve('../etc')
    with pytest.raises(tj.JobRejected, match='no id given'):
        res.resolve(' ')

    # configuration: exact reasons from load_configs; the node's default budget fills ppo.max_wall_s
    v = _job(res, epochs=7)
    assert v.config['ppo']['max_epochs'] == 7 and v.config['ppo']['max_wall_s'] == 600.0 and v.budget_s == 600.0
    assert v.config['reward'] == tj.validate_request('ref_a', [], res, tj.Budget(default_s=60)).config['reward']
    with pytest.raises(tj.JobRejected, match=r"bad override: .*unknown key\(s\) \['nope'\] for PPOConfig"):
        tj.validate_request('ref_a', [('ppo.nope', 1)], res, tj.Budget(default_s=60))
    with pytest.raises(tj.JobRejected, match=r"unknown configuration section\(s\) \['pp0'\]"):
        tj.validate_request('ref_a', [('pp0.max_epochs', 1)], res, tj.Budget(default_s=60))
    with pytest.raises(tj.JobRejected, match=r"key 'max_epochs' of PPOConfig must be int, got 'many'"):
        tj.validate_request('ref_a', [('ppo.max_epochs', 'many')], res, tj.Budget(default_s=60))
    with pytest.raises(tj.JobRejected, match=r"budget ppo.max_wall_s=5 s is outside the allowed range \[6, 86400\] s"):
        tj.validate_request('ref_a', [('ppo.max_wall_s', 5.0)], res, tj.Budget())
    with pytest.raises(tj.JobRejected, match=r"outside the allowed range \[60, 120\] s"):
        tj.validate_request('ref_a', [('ppo.max_wall_s', 121)], res, tj.Budget(min_s=60, max_s=120))
    with pytest.raises(tj.JobRejected, match='no training budget: set ppo.max_wall_s'):
        tj.validate_request('ref_a', [('ppo.max_wall_s', None)], res, tj.Budget())
    assert tj.validate_request('ref_a', [('ppo.max_wall_s', None)], res, tj.Budget(max_s=0)).budget_s is None
    with pytest.raises(ValueError, match='exceeds'):
        tj.Budget(min_s=10, max_s=5)


def test_queue_cancel_and_results(roots):
    tmp, res, fake = roots
    seen = []
    m = tj.JobManager(tmp / 'skills', python=fake, on_update=lambda j, w: seen.append((j['job_id'], j['state'], w)))
    try:
        a = m.submit('ref_a', _job(res, epochs=40))
        b = m.submit('ref_a', _job(res, epochs=2))
        c = m.submit('demo_a', _job(res, 'demo_a', epochs=3))
        bad = m.submit('ref_a', _job(res, seed=2))
        assert _wait(lambda: (m.get(a['job_id'])['progress'] or {}).get('epoch', 0) >= 2)
        assert m.get(a['job_id'])['state'] == tj.RUNNING and m.child_pid() is not None
        assert m.queue() == [b['job_id'], c['job_id'], bad['job_id']]                 # FIFO behind the running one
        assert m.get(b['job_id'])['state'] == tj.QUEUED
        assert m.cancel(b['job_id']) == (True, f'job {b["job_id"]} cancelled (it was queued)')
        assert m.get(b['job_id'])['state'] == tj.CANCELLED and m.queue() == [c['job_id'], bad['job_id']]
        ok, msg = m.cancel(a['job_id'])
        assert ok and 'stops at the end of its running epoch' in msg
        done_a = m.wait(a['job_id'], 20)
        assert done_a['state'] == tj.CANCELLED and done_a['exit_status'] == tj.EXIT_STOPPED
        assert done_a['progress']['epoch'] < 40
        # the checkpoint is kept for a manual resume
        assert (tmp / 'skills' / '.work' / a['skill_id'] / 'checkpoints' / 'last.pth').is_file()
        done_c = m.wait(c['job_id'], 20)
        assert done_c['state'] == tj.SUCCEEDED and done_c['result']['policy']['success_rate'] == 0.5
        assert done_c['source']['kind'] == 'demonstration' and done_c['progress']['epoch'] == 3
        done_bad = m.wait(bad['job_id'], 20)
        assert done_bad['state'] == tj.FAILED and done_bad['exit_status'] == tj.EXIT_BAD_INPUT
        assert done_bad['message'] == 'reference gt: the left wrist target is unreachable'
        assert m.cancel('job_nope') == (False, "unknown job 'job_nope'")
        assert m.cancel(c['job_id']) == (False, f'job {c["job_id"]} has already succeeded')
        # updates: every state of every job, progress per epoch of c
        states_c = [s for j, s, w in seen if j == c['job_id'] and w == 'state']
        assert states_c[0] == tj.QUEUED and states_c[-1] == tj.SUCCEEDED and tj.RUNNING in states_c
        assert [s for j, s, w in seen if j == c['job_id'] and w == 'progress'] == [tj.RUNNING] * 3
        # the journal on disk is the record
        rec = json.loads((tmp / 'skills' / '.jobs' / f'{c["job_id"]}.json').read_text())
        assert rec['state'] == tj.SUCCEEDED and rec['config']['ppo']['max_epochs'] == 3
        assert (tmp / 'skills' / '.jobs' / f'{c["job_id"]}.log').is_file()
        # one manager per skills root
        with pytest.raises(tj.JobsLocked, match='in use by another trainer node'):
            tj.JobManager(tmp / 'skills', python=fake)
    finally:
        m.shutdown()


def test_restart_resumes_interrupted_jobs(roots):
    tmp, res, fake = roots
    skills = tmp / 'skills'
    m = tj.JobManager(skills, python=fake)
    a = m.submit('ref_a', _job(res, epochs=8))
    b = m.submit('ref_a', _job(res, epochs=2))
    assert _wait(lambda: (m.get(a['job_id'])['progress'] or {}).get('epoch', 0) >= 2)
    m.shutdown()                    # graceful: the child checkpoints at its epoch, the job stays resumable
    rec = json.loads((skills / '.jobs' / f'{a["job_id"]}.json').read_text())
    assert rec['state'] == tj.QUEUED and rec['interrupted'] and 'resumes at restart' in rec['message']
    stopped_at = rec['progress']['epoch']

    # a crash (SIGKILL of the node): the journal still says running, 2 epochs after the checkpoint
    crash = json.loads(json.dumps(rec))
    crash.update(job_id='job_crashed', skill_id='skill_crashed', seq=0, state=tj.RUNNING, interrupted=False,
                 progress={'epoch': 5, 'total_epochs': 6})
    ck = skills / '.work' / 'skill_crashed' / 'checkpoints'
    ck.mkdir(parents=True)
    (ck / 'last.pth').write_bytes(b'x')
    (ck / 'last.json').write_text(json.dumps({'epoch': 3}))
    crash['config']['ppo']['max_epochs'] = 6
    (skills / '.jobs' / 'job_crashed.json').write_text(json.dumps(crash))
    # ... and one whose skill had been written just before the crash
    written = dict(crash, job_id='job_written', skill_id='skill_written', seq=-1)
    (skills / 'skill_written').mkdir()
    (skills / 'skill_written' / 'skill.json').write_text('{}')
    (skills / '.jobs' / 'job_written.json').write_text(json.dumps(written))

    epochs, started = {}, []

    def update(j, what):
        if what == 'progress':
            epochs.setdefault(j['job_id'], []).append(j['progress']['epoch'])
        elif j['state'] == tj.RUNNING and j['job_id'] not in started:
            started.append(j['job_id'])
    m2 = tj.JobManager(skills, python=fake, on_update=update)
    try:
        assert m2.get('job_written')['state'] == tj.SUCCEEDED
        done = m2.wait('job_crashed', 20)
        assert done['state'] == tj.SUCCEEDED and done['resumes'][-1] == {
            'at_utc': done['resumes'][-1]['at_utc'], 'last_epoch': 5, 'checkpoint_epoch': 3, 'epochs_lost': 2}
        assert epochs['job_crashed'] == [4, 5, 6]                 # resumed after the checkpoint of epoch 3
        done = m2.wait(a['job_id'], 20)
        assert done['state'] == tj.SUCCEEDED and done['resumes'][-1]['epochs_lost'] == 0
        assert epochs[a['job_id']][0] == stopped_at + 1 and epochs[a['job_id']][-1] == 8
        assert m2.wait(b['job_id'], 20)['state'] == tj.SUCCEEDED
        assert done['attempts'] == 2
        # interrupted jobs first (in creation order), then the queue
        assert started == ['job_crashed', a['job_id'], b['job_id']]
    finally:
        m2.shutdown()


def test_running_child_that_ignores_sigterm_is_killed(roots):
    tmp, res, fake = roots
    m = tj.JobManager(tmp / 'skills', python=fake, cancel_grace_s=0.5)
    try:
        j = m.submit('ref_a', _job(res, epochs=100, seed=3))
        assert _wait(lambda: (m.get(j['job_id'])['progress'] or {}).get('epoch', 0) >= 1)
        t0 = time.monotonic()
        assert m.cancel(j['job_id'])[0]
        done = m.wait(j['job_id'], 10)
        assert done['state'] == tj.CANCELLED and done['exit_status'] == -signal.SIGKILL
        assert 0.4 < time.monotonic() - t0 < 5.0
    finally:
        m.shutdown()


def test_child_dies_with_its_parent(tmp_path):
    """A parent that spawns a process calling die_with_parent, then is SIGKILLed: the child goes too."""
    pidfile = tmp_path / 'child.pid'
    parent_code = textwrap.dedent(f'''
        import os, subprocess, sys, time
        code = ("import os, sys, time; from dexman_rl.core.training_child import die_with_parent; "
                "die_with_parent(int(sys.argv[1])); open(sys.argv[2], 'w').write(str(os.getpid())); time.sleep(60)")
        subprocess.Popen([sys.executable, '-c', code, str(os.getpid()), {str(pidfile)!r}])
        time.sleep(60)
    ''')
    parent = subprocess.Popen([sys.executable, '-c', parent_code])
    try:
        assert _wait(lambda: pidfile.is_file() and pidfile.read_text(), 30)
        child = int(pidfile.read_text())
        os.kill(child, 0)
        parent.kill()
        parent.wait(5)
        assert _wait(lambda: not _alive(child), 5), 'the child outlived its parent'
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def test_real_child_retargets_a_demonstration_and_trains(tmp_path):
    """The real child: a demonstration id without a reference -> retargeting -> 1 PPO epoch -> skill."""
    from dexman_description import robot_model as rm
    ok, why = rm.assets_available()
    if not ok:
        pytest.skip(f'robot asset packages not installed: {why}')
    from rl_reference import robot_model_dir, sim_config
    from dexman_common.artefacts import demonstration as dm
    from dexman_common.artefacts import reference as refm
    from dexman_common.artefacts import skill as skm
    from dexman_synthetic.core import demo_alignment as da
    from dexman_synthetic.core import ground_truth as gtm
    from dexman_synthetic.core.generate import GenerateOptions, generate
    generate(GenerateOptions('pick_place', 'box', 1, width=96, height=72, fps=30.0, duration=1.0), tmp_path / 'case',
             progress=False)
    demo, meshes, _ = da.demonstration_from_ground_truth(gtm.load(tmp_path / 'case'), 'demo_k')
    dm.save(demo, tmp_path / 'demos', meshes)
    res = tj.SourceResolver(tmp_path / 'refs', tmp_path / 'demos')
    pairs = [('ppo.num_envs', 4), ('ppo.minibatch_size', 128), ('ppo.max_epochs', 1), ('job.render_video', False),
             ('job.eval_envs', 2), ('success.rollouts_per_sequence', 2), ('env.threads', 1),
             ('env.max_unreachable_fraction', 1.0),     # this test is about the plumbing, not the reach
             ('sim.cache_dir', sim_config().cache_dir)]
    v = tj.validate_request('demo_k', pairs, res, tj.Budget(default_s=600.0))
    assert v.source.kind == 'demonstration'
    phases = []
    m = tj.JobManager(tmp_path / 'skills', robot_model_dir=robot_model_dir(), reference_root=tmp_path / 'refs',
                      on_update=lambda j, w: phases.append(j.get('phase')))
    try:
        job = m.submit('demo_k', v)
        done = m.wait(job['job_id'], 240)
    finally:
        m.shutdown()
    log = m.log_path(job['job_id']).read_text()
    assert done['state'] == tj.SUCCEEDED, (done['message'], log[-3000:])
    assert 'retargeting' in phases and 'training' in phases
    assert done['reference_id'] == 'demo_k' and refm.load(tmp_path / 'refs' / 'demo_k').demonstration_id == 'demo_k'
    skill = skm.load(done['result']['skill_dir'])
    assert skill.reference_id == 'demo_k' and skill.training['epochs'] == 1
    assert done['result']['policy']['count'] == 2
