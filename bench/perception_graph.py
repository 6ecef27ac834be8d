"""The whole perception graph on a synthetic RGB-D case: frames per second and end-to-end accuracy.

    source env.sh
    python bench/perception_graph.py CASE_DIR [CASE_DIR ...]

Runs launch/perception.launch.xml (every stage node a separate process over real DDS, bag played
as fast as the graph takes it) on the case's bag, prompted with the first-frame object boxes, and
scores the written demonstration against the ground truth (core.demo_scoring: object centroid
error after first-frame alignment, hand keypoint error, table normal). Frames per second: images
over the processing time (from the player's first image to the demonstration written; parsed from
the ROS log stamps), and over the whole launch wall time (process start-up, ~5-8 s here, included).
Imported by bench/perception.py. The LAST line of stdout is one JSON object.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
_STAMP = re.compile(r'\[(\d{9,}\.\d+)\] \[dexman\.(\w+)\]: (.*)')


def _processing_seconds(log: str) -> float | None:
    start = end = None
    for m in _STAMP.finditer(log):
        t, node, text = float(m.group(1)), m.group(2), m.group(3)
        if node == 'bag_player' and text.startswith('playing '):
            start = t
        if node == 'demo_assembler' and text.startswith('demonstration '):
            end = t
    return end - start if start is not None and end is not None else None


def run_graph_case(case_dir: pathlib.Path, out_dir: pathlib.Path, timeout: float = 900) -> dict:
    from dexman_common.artefacts import demonstration
    from dexman_synthetic.core.demo_scoring import object_error_vs_ground_truth
    from dexman_synthetic.core import ground_truth as gtio
    gt = gtio.load(case_dir)
    labels = json.dumps([o.label for o in gt.objects])
    cmd = ['ros2', 'launch', str(ROOT / 'launch' / 'perception.launch.xml'), f'bag:={case_dir / "bag"}',
           f'output_dir:={out_dir}', f'report:={out_dir / "report.json"}', f'demonstration_id:={case_dir.name}',
           f'prompt_boxes:={json.dumps(gt.prompt_boxes())}', f'object_labels:={labels}']
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, RCUTILS_COLORIZED_OUTPUT='0'))
    wall = time.perf_counter() - t0
    log = p.stdout + p.stderr
    n = int(gt.frame_in_bag.sum())
    proc = _processing_seconds(log)
    res = {'case': case_dir.name, 'exit_code': p.returncode, 'frames': n, 'wall_s': wall,
           'processing_s': proc, 'graph_fps': (n / proc) if proc else None, 'graph_fps_with_startup': n / wall}
    rep = out_dir / 'report.json'
    if rep.is_file():
        r = json.loads(rep.read_text())
        res['stages'] = {k: [s['state'], s['frames_out'], s['frames_invalid']] for k, s in r['stages'].items()}
        res['why_not'] = r.get('reason', '')
    demo_dir = out_dir / 'demonstrations' / case_dir.name
    if p.returncode == 0 and demo_dir.is_dir():
        res['accuracy'] = object_error_vs_ground_truth(demonstration.load(demo_dir), case_dir)
    else:
        res['log_tail'] = log[-2000:]
    return res


def main(argv=None) -> int:
    cases = [pathlib.Path(c) for c in (argv if argv is not None else sys.argv[1:])]
    if not cases:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix='dexman_graph_') as tmp:
        out = [run_graph_case(c, pathlib.Path(tmp) / c.name) for c in cases]
    print(json.dumps({'bench': 'perception_graph', 'cases': out}, default=float))
    return 0


if __name__ == '__main__':
    sys.exit(main())
