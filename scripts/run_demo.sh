#!/usr/bin/env bash
# The main job on the embedded CPU defaults, setup included:
#   bash scripts/run_demo.sh [OUT_DIR]          (default OUT_DIR: data/demo)
# 1. renders a synthetic demonstration with exact ground truth (a person pouring with a mug, RGB-D),
# 2. runs the ROS 2 perception graph on its rosbag (launch/dexman.launch.xml: bag player, depth,
#    hands, body, segmentation, mesh, tracker, scene alignment, demonstration assembler), prompted
#    with the mug's first-frame box, which writes a metric demonstration in the robot's world,
# 3. retargets that perceived demonstration onto the G1 + two Shadow hands (joint trajectories at
#    30 Hz, contact priors, stable object placement),
# 4. prints a JSON summary (per-stage report, object error vs ground truth, retargeting).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
set +u; source env.sh; set -u
OUT=$(realpath -m "${1:-$ROOT/data/demo}")
CASE="$OUT/pick_pour_mug_s3"
mkdir -p "$OUT"
echo "== 1/3 synthetic demonstration -> $CASE"
if [ ! -f "$CASE/ground_truth/meta.json" ]; then
  ros2 run dexman_synthetic dexman_synth generate --task pick_pour --object mug --seed 3 --depth --out "$CASE"
fi
ros2 run dexman_synthetic dexman_synth preview "$CASE" --out "$OUT/preview.png"
echo "== 2/3 ROS 2 perception graph on the bag"
BOXES=$(ros2 run dexman_synthetic dexman_synth prompt "$CASE")
rm -rf "$OUT/perception/demonstrations/pick_pour_mug_s3"
ros2 launch launch/dexman.launch.xml bag:="$CASE/bag" prompt_boxes:="$BOXES" object_labels:="['mug']" \
  output_dir:="$OUT/perception" demonstration_id:=pick_pour_mug_s3 report:="$OUT/perception_report.json"
echo "== 3/3 retargeting the perceived demonstration onto the G1 + two Shadow hands"
ros2 run dexman_retarget retarget "$OUT/perception/demonstrations/pick_pour_mug_s3" --out "$OUT/references" --json \
  | tee "$OUT/retarget.json"
python - "$OUT" "$CASE" <<'PY'
import json, pathlib, sys
from dexman_common.artefacts import demonstration
from dexman_synthetic.core.demo_scoring import object_error_vs_ground_truth
out, case = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
report = json.loads((out / 'perception_report.json').read_text())
demo = demonstration.load(out / 'perception' / 'demonstrations' / 'pick_pour_mug_s3')
ret = json.loads((out / 'retarget.json').read_text().strip().splitlines()[-1])
print(json.dumps({'stages': {k: [s['state'], s['frames_out'], s['frames_invalid']] for k, s in report['stages'].items()},
                  'demonstration': str(demo.root), 'frames': demo.n_frames,
                  'object_error': object_error_vs_ground_truth(demo, case),
                  'preview': str(out / 'preview.png'), 'retarget': ret}))
PY
