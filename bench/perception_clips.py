"""The paper's four real input clips through the perception graph with the CPU defaults.

    source env.sh
    python bench/perception_clips.py [--videos DIR] [--quick] [--keep DIR]

Each MP4 (default: ../shared/data/videos) becomes a rosbag (video_to_bag: RGB only, intrinsics from
a 60 deg horizontal field of view), then launch/perception.launch.xml runs on it with a
first-frame box around the manipulated object(s) (drawn by hand once for these clips, below).
These videos have no depth: the depth stage stops and names the backend it needs (vggt), and every
stage that needs metric depth stops in turn with its reason; the hands and body stages run
RGB-only (honest metric estimates from MediaPipe's metric landmarks placed by PnP). Reported per
clip: each stage's state, frames in / out / invalid and message, the graph's wall time and
frames per second, whether a demonstration was written. `--quick`: the shortest clip only.
The LAST line of stdout is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
# first-frame boxes [x0, y0, x1, y1] (pixels) of the target objects, drawn on the first frames
PROMPTS = {
    '20230928_047_original': [120, 300, 235, 450, 330, 290, 525, 510],    # brush, wooden box
    '20231005_200_original': [212, 350, 312, 490, 362, 300, 552, 470],    # brush, blue box
    'lift_pot1_original': [300, 296, 540, 420],                            # pot
    'pour_water1_original': [396, 142, 448, 300],                          # bottle
}


def run_clip(video: pathlib.Path, work: pathlib.Path) -> dict:
    bag = work / f'{video.stem}_bag'
    if not bag.exists():
        subprocess.run(['ros2', 'run', 'dexman_perception', 'video_to_bag', str(video), str(bag)],
                       check=True, capture_output=True, text=True)
    out = work / video.stem
    boxes = PROMPTS.get(video.stem, [0.0])
    cmd = ['ros2', 'launch', str(ROOT / 'launch' / 'perception.launch.xml'), f'bag:={bag}',
           f'output_dir:={out}', f'report:={out / "report.json"}', f'demonstration_id:={video.stem}',
           f'prompt_boxes:={json.dumps([float(b) for b in boxes])}']
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800,
                       env=dict(os.environ, RCUTILS_COLORIZED_OUTPUT='0'))
    wall = time.perf_counter() - t0
    rep_path = out / 'report.json'
    rep = json.loads(rep_path.read_text()) if rep_path.is_file() else {}
    frames = (rep.get('playback') or {}).get('frames_total')
    return {'clip': video.name, 'exit_code': p.returncode, 'wall_s': wall,
            'graph_fps': (frames / wall) if frames else None, 'frames': frames,
            'demonstration_written': bool(rep.get('written')),
            'why_not': rep.get('reason', ''),
            'stages': {name: {k: s.get(k) for k in ('state', 'backend', 'frames_in', 'frames_out',
                                                     'frames_invalid', 'message')}
                       for name, s in rep.get('stages', {}).items()},
            'log_tail': '' if rep else (p.stdout + p.stderr)[-2000:]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--videos', default=str(ROOT.parent / 'shared' / 'data' / 'videos'))
    ap.add_argument('--quick', action='store_true', help='the shortest clip only')
    ap.add_argument('--keep', default=None, help='keep bags and outputs in this directory')
    a = ap.parse_args(argv)
    vids = sorted(pathlib.Path(a.videos).glob('*.mp4'))
    if not vids:
        print(f'no clips in {a.videos} (the shared/ folder beside the checkout is absent)', file=sys.stderr)
        print(json.dumps({'bench': 'perception_clips', 'skipped': f'no clips in {a.videos}'}))
        return 0
    if a.quick:
        vids = [min(vids, key=lambda v: v.stat().st_size)]
    tmp = tempfile.TemporaryDirectory(prefix='dexman_clips_')
    work = pathlib.Path(a.keep or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for v in vids:
        r = run_clip(v, work)
        results.append(r)
        print(f"{v.name}: exit {r['exit_code']}, {r['frames']} frames, {r['wall_s']:.1f} s, "
              + ', '.join(f"{k} {s['state']} ({s['frames_out']} out, {s['frames_invalid']} invalid)"
                          for k, s in r['stages'].items()), file=sys.stderr)
    print(json.dumps({'bench': 'perception_clips', 'quick': a.quick, 'clips': results}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
