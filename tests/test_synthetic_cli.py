"""dexman_synth command line: argument errors, preview, list."""
import cv2
import pytest
from synth_cases import case

from dexman_synthetic.cli import main


@pytest.mark.parametrize('argv, needle', [
    ([], 'command is required'),
    (['generate', '--task', 'juggle', '--object', 'box', '--seed', '0', '--out', '/tmp/x'], 'juggle'),
    (['generate', '--task', 'pick_place', '--object', 'box', '--seed', '0'], '--out'),
    (['generate', '--task', 'pick_place', '--object', 'box', '--seed', '-1', '--out', '/tmp/x'], 'seed'),
    (['generate', '--task', 'pick_place', '--object', 'box', '--seed', '0', '--out', '/tmp/x',
      '--depth-noise', '0.01'], 'need --depth'),
    (['generate', '--task', 'pick_place', '--object', 'box', '--seed', '0', '--out', '/tmp/x',
      '--width', 'wide'], 'width'),
    (['suite', '--out', '/tmp/x', '--only', 'nope'], 'nope'),
    (['preview', '/nonexistent/case', '--out', '/tmp/x.png'], 'not a directory'),
])
def test_bad_arguments_give_one_line_and_status_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('dexman_synth: error:') and needle in err, err


def test_preview_draws_a_frame(tmp_path, capsys):
    out = tmp_path / 'p.png'
    assert main(['preview', str(case('pick_cyl')), '--out', str(out), '--frame', '5']) == 0
    img = cv2.imread(str(out))
    assert img.shape == (120, 160, 3)
    assert main(['preview', str(case('pick_cyl')), '--out', str(out), '--frame', '999']) == 2
    # a dropped frame is drawn from the ground-truth labels
    dropped = __import__('json').loads((case('degraded') / 'ground_truth' / 'meta.json').read_text())
    k = dropped['degradations']['frame_drops']['dropped'][0]
    assert main(['preview', str(case('degraded')), '--out', str(out), '--frame', str(k)]) == 0


def test_list(capsys):
    assert main(['list']) == 0
    out = capsys.readouterr().out
    assert 'handover' in out and 'slab' in out and 'pick_place_box_s0' in out
