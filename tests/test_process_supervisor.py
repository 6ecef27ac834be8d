"""The process supervisor (dexman_bringup.core.process_supervisor) with small real children.

Children are `python -c` one-liners; every run has a timeout so a bug can't hang the suite.
"""
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dexman_bringup.core.launch_description import ProcessSpec
from dexman_bringup.core.process_supervisor import ProcessSupervisor, normalize_returncode

PY = sys.executable


def py(name, code, **kw):
    """A ProcessSpec running `python -c code`, output to the screen unless told otherwise."""
    kw.setdefault('output', 'screen')
    return ProcessSpec(name=name, argv=(PY, '-c', textwrap.dedent(code)), **kw)


def run(specs, timeout=15.0, **kw):
    out = io.StringIO()
    start = time.monotonic()
    rc = ProcessSupervisor(specs, stdout=out, poll_interval=0.02, **kw).run(timeout=timeout)
    return rc, out.getvalue(), time.monotonic() - start


def lines_of(out, name):
    prefix = f'[{name}] '
    return [line[len(prefix):] for line in out.splitlines() if line.startswith(prefix)]


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); treat it as gone
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().split(')')[-1].split()[0] != 'Z'
    except OSError:
        return False


def test_output_prefixing_and_clean_exit():
    rc, out, _ = run([
        py('alpha-1', """
            import sys
            print('one'); print('two')
            print('to stderr', file=sys.stderr)
            sys.stdout.write('no newline at end')
        """),
        py('beta-2', "print('from beta')", env=(('GREETING', 'hi there'),)),
        py('gamma-3', "import os; print(os.environ['GREETING'] if 'GREETING' in os.environ "
                      "else 'unset', os.getcwd())", cwd='/tmp'),
    ])
    assert rc == 0
    alpha = lines_of(out, 'alpha-1')   # stdout keeps its order; stderr is read separately
    assert [x for x in alpha if x != 'to stderr'] == ['one', 'two', 'no newline at end']
    assert alpha.count('to stderr') == 1
    assert lines_of(out, 'beta-2') == ['from beta']
    assert lines_of(out, 'gamma-3') == ['unset /tmp']   # env additions are per process
    assert '[INFO] [alpha-1]: process started with pid [' in out
    assert '[INFO] [beta-2]: process has finished cleanly [pid ' in out


def test_output_modes_and_log_files(tmp_path):
    code = "import sys; print('OUT'); print('ERR', file=sys.stderr)"
    rc, out, _ = run([py('scr-1', code, output='screen'), py('log-2', code, output='log'),
                      py('own-3', code, output='own_log')], log_dir=tmp_path)
    assert rc == 0
    assert sorted(lines_of(out, 'scr-1')) == ['ERR', 'OUT']
    assert lines_of(out, 'log-2') == ['ERR']          # 'log': only stderr reaches the screen
    assert lines_of(out, 'own-3') == []
    launch_log = (tmp_path / 'launch.log').read_text()
    assert '[log-2] OUT' in launch_log and '[log-2] ERR' in launch_log
    assert '[scr-1] OUT' not in launch_log
    assert (tmp_path / 'own-3-stdout.log').read_text() == 'OUT\n'
    assert (tmp_path / 'own-3-stderr.log').read_text() == 'ERR\n'
    assert sorted((tmp_path / 'own-3.log').read_text().split()) == ['ERR', 'OUT']


def test_on_exit_shutdown_stops_the_rest_and_returns_its_code():
    rc, out, took = run([
        py('server-1', "import time; print('serving', flush=True); time.sleep(30)"),
        py('test-2', "import time; time.sleep(0.3); raise SystemExit(3)", on_exit='shutdown'),
        py('sleeper-3', "import time; time.sleep(30)", respawn=True),
    ])
    assert rc == 3
    assert took < 8
    assert 'process has died [pid' in out and 'exit code 3' in out
    # the others were stopped (SIGINT), and the respawning one was not restarted
    assert '[server-1]: process has' in out and '[sleeper-3]: process has' in out
    assert 'respawning' not in out


def test_on_exit_shutdown_with_success_returns_zero():
    rc, _, took = run([
        py('bg-1', "import time; time.sleep(30)"),
        py('main-2', "print('done')", on_exit='shutdown'),
    ])
    assert rc == 0 and took < 8


def test_failing_required_process_makes_launch_fail():
    rc, out, _ = run([
        py('ok-1', "import time; time.sleep(0.2)"),
        py('bad-2', "raise SystemExit(4)"),
        py('ok-3', "print('fine')"),
    ])
    assert rc == 4
    assert lines_of(out, 'ok-3') == ['fine']
    assert "[ERROR] [bad-2]: process has died [pid" in out


def test_process_killed_by_signal_reports_128_plus_n():
    rc, _, _ = run([py('victim-1', "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")])
    assert rc == 128 + signal.SIGTERM
    assert normalize_returncode(-9) == 137 and normalize_returncode(2) == 2


def test_respawn_with_max_retries():
    rc, out, _ = run([py('flaky-1', "print('run')", respawn=True, respawn_delay=0.05,
                         respawn_max_retries=2)])
    assert rc == 0
    assert lines_of(out, 'flaky-1') == ['run', 'run', 'run']
    assert out.count('respawning') == 2


def test_missing_executable_fails_and_stops_the_others():
    rc, out, took = run([
        py('bg-1', "import time; time.sleep(30)"),
        ProcessSpec(name='ghost-2', argv=('/no/such/program',)),
        py('never-3', "print('should not start')"),
    ])
    assert rc == 127
    assert "[ERROR] [ghost-2]: failed to start '/no/such/program'" in out
    assert lines_of(out, 'never-3') == [] and took < 8


def test_timeout_stops_everything():
    rc, _, took = run([py('long-1', "import time; time.sleep(30)")], timeout=0.5)
    assert rc == 124 and took < 5


def test_sigint_escalates_to_sigterm_then_sigkill():
    stubborn = """
        import signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        {extra}
        print('ready', flush=True)
        time.sleep(30)
    """
    rc, out, took = run([
        py('ign-int-1', stubborn.format(extra=''), sigterm_timeout=0.3),
        py('ign-both-2', stubborn.format(extra='signal.signal(signal.SIGTERM, signal.SIG_IGN)'),
           sigterm_timeout=0.3, sigkill_timeout=0.3),
    ], timeout=1.0)
    assert rc == 124 and took < 6
    assert "[ign-int-1]: process[ign-int-1] failed to terminate 0.3 seconds after receiving " \
           "'SIGINT', escalating to 'SIGTERM'" in out
    assert 'exit code -15' in out
    assert "escalating to 'SIGKILL'" in out and 'exit code -9' in out


DRIVER = '''
import sys
from dexman_bringup.core.launch_description import ProcessSpec
from dexman_bringup.core.process_supervisor import ProcessSupervisor
child = """
import os, sys, time
open(sys.argv[1], 'w').write(str(os.getpid()))
print('ready', flush=True)
time.sleep(60)
"""
specs = [ProcessSpec(name=f'child-{i}', argv=(sys.executable, '-c', child, sys.argv[1] + f'.{i}'),
                     output='screen', sigterm_timeout=2.0, sigkill_timeout=2.0)
         for i in range(3)]
sys.exit(ProcessSupervisor(specs).run(timeout=30))
'''


@pytest.mark.parametrize('sig, expected_rc', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_to_supervisor_ends_all_children(tmp_path, sig, expected_rc):
    driver = tmp_path / 'driver.py'
    driver.write_text(DRIVER)
    base = tmp_path / 'pid'
    proc = subprocess.Popen([PY, str(driver), str(base)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        pid_files = [Path(f'{base}.{i}') for i in range(3)]
        assert wait_for(lambda: all(p.exists() and p.read_text() for p in pid_files)), \
            'children did not start'
        pids = [int(p.read_text()) for p in pid_files]
        assert all(pid_alive(p) for p in pids)
        time.sleep(0.2)   # let the children reach their sleep
        start = time.monotonic()
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=10)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == expected_rc, out
    assert took < 4, out
    assert wait_for(lambda: not any(pid_alive(p) for p in pids), timeout=3)
    assert out.count('process started with pid') == 3
    assert '[launch]: ' in out and 'escalating' not in out   # SIGINT was enough


def test_cli_runs_a_launch_file(tmp_path):
    launch = tmp_path / 'run.launch.xml'
    launch.write_text(textwrap.dedent(f"""
        <launch>
          <arg name="code" default="5"/>
          <executable cmd="{PY} -c 'import time; time.sleep(30)'"/>
          <executable
            cmd="{PY} -c 'import sys; print(sys.argv[1]); sys.exit(int(sys.argv[1]))' $(var code)"
            on_exit="shutdown" output="screen" name="main"/>
        </launch>
    """))
    env = dict(os.environ, ROS_LOG_DIR=str(tmp_path / 'logs'))
    result = subprocess.run([PY, '-m', 'dexman_bringup.launch_cli', str(launch), 'code:=7'],
                            capture_output=True, text=True, timeout=20, env=env)
    assert result.returncode == 7, result.stdout + result.stderr
    assert '[main-2] 7' in result.stdout
    assert 'All log files can be found below' in result.stdout
    assert list((tmp_path / 'logs').glob('*/launch.log'))
