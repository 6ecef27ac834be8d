#!/usr/bin/env bash
# The main job on the embedded CPU defaults, setup included:
#   bash scripts/run_demo.sh [OUT_DIR]          (default OUT_DIR: data/demo)
# 1. renders a synthetic demonstration with exact ground truth (a person pouring with a mug),
# 2. runs the ROS 2 graph on its rosbag (launch/dexman.launch.xml: bag player, frame probe,
#    retarget node) and checks every frame arrived,
# 3. retargets the demonstration onto the G1 + two Shadow hands (joint trajectories at 30 Hz,
#    contact priors, stable object placement),
# 4. prints a JSON summary. Perception and training join as their stages land (README).
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
echo "== 2/3 ROS 2 graph on the bag (real time)"
ros2 launch launch/dexman.launch.xml bag:="$CASE/bag" rate:=1.0 report:="$OUT/frames.json"
echo "== 3/3 retargeting onto the G1 + two Shadow hands"
ros2 run dexman_retarget retarget "$CASE" --out "$OUT/references" --json | tee "$OUT/retarget.json"
python - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
frames = json.loads((out / 'frames.json').read_text())
ret = json.loads((out / 'retarget.json').read_text().strip().splitlines()[-1])
print(json.dumps({'frames_received': frames['frame_count'], 'frames_published': frames['status']['frames_published'],
                  'preview': str(out / 'preview.png'), 'retarget': ret}))
PY
