#!/usr/bin/env bash
# Idempotent setup of the DexMan-ROS workspace.
#
#   bash scripts/setup.sh            # creates .venv, installs pinned deps, colcon-builds the workspace
#
# Two modes, picked automatically:
#   * system ROS 2: a ROS 2 install is sourced (ROS_DISTRO set, /opt/ros/$ROS_DISTRO exists).
#     The venv sees the system's rclpy/messages (--system-site-packages); only requirements/common.txt
#     is installed, with numpy held at the system's version (its message extensions are built on it).
#   * pip-only ROS 2: otherwise. The unofficial Kilted wheels from PyPI (requirements/ros-pip.txt)
#     go into the venv, with their CMake exports fixed (scripts/fix_ros_wheel_cmake_paths.sh).
# A second run with nothing changed only compares two hashes and exits in about a second.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV="$ROOT/.venv"
PY=${DEXMAN_PYTHON:-python3}
log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

if [ -n "${ROS_DISTRO:-}" ] && [ -d "/opt/ros/${ROS_DISTRO}" ]; then MODE=system; else MODE=pip; fi

# ---------------------------------------------------------------- python environment
req_hash() {
  { echo "$MODE"; cat requirements/*.txt scripts/setup.sh scripts/fix_ros_wheel_cmake_paths.sh; } | sha256sum | cut -d' ' -f1
}
PIP_STAMP="$VENV/.dexman-pip-stamp"
want=$(req_hash)
if [ -f "$PIP_STAMP" ] && [ "$(cat "$PIP_STAMP")" = "$want" ]; then
  log "python environment up to date ($MODE ROS)"
else
  command -v "$PY" >/dev/null || die "$PY not found (need Python 3.10-3.12 with headers)"
  for tool in cmake g++; do command -v $tool >/dev/null || die "$tool not found: install it (Debian: apt-get install cmake g++)"; done
  log "creating the python environment in .venv ($MODE ROS); this takes a few minutes the first time"
  PIPLOG="$ROOT/log/setup-pip.log"; mkdir -p "$ROOT/log"; : >"$PIPLOG"
  pipi() { "$VENV/bin/python" -m pip install --progress-bar off "$@" >>"$PIPLOG" 2>&1 \
             || { tail -40 "$PIPLOG" >&2; die "pip install failed (full log: $PIPLOG)"; }; }
  if [ "$MODE" = system ]; then
    # shellcheck disable=SC1090
    NPV=$(bash -c ". /opt/ros/$ROS_DISTRO/setup.bash && $PY -c 'import numpy; print(numpy.__version__)'") \
      || die "the system python has no numpy: install python3-numpy"
    [ -x "$VENV/bin/python" ] || "$PY" -m venv --system-site-packages "$VENV"
    pipi -U pip 'setuptools<80'
    pipi "numpy==$NPV" -r requirements/common.txt
    pipi --no-deps -r requirements/no-deps.txt
    SAM2_BUILD_CUDA=0 pipi --no-deps --no-build-isolation -r requirements/sam2.txt
    echo "$ROS_DISTRO" >"$VENV/.dexman-ros-distro"
  else
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    pipi -U pip 'setuptools<80' wheel
    pipi -c requirements/constraints.txt -r requirements/ros-pip.txt -r requirements/common.txt
    pipi --no-deps -r requirements/no-deps.txt
    SAM2_BUILD_CUDA=0 pipi --no-deps --no-build-isolation -r requirements/sam2.txt
    VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" bash scripts/fix_ros_wheel_cmake_paths.sh >>"$PIPLOG" 2>&1 \
      || { tail -20 "$PIPLOG" >&2; die "fixing the ROS wheels' CMake paths failed"; }
  fi
  echo "$want" >"$PIP_STAMP"
  log "python environment ready ($(du -sh "$VENV" | cut -f1))"
fi

# ---------------------------------------------------------------- colcon workspace
# shellcheck disable=SC1091
set +u; . "$ROOT/env.sh" --no-overlay; set -u
BASE_PATHS=(src)
# tf2_msgs (/tf, /tf_static) is built from compat/ only where the environment lacks it, so it
# never shadows a system tf2_msgs.
if python -c "import sys; from ament_index_python.packages import get_package_prefix as g; g('tf2_msgs')" 2>/dev/null \
   && [ "$(python -c "from ament_index_python.packages import get_package_prefix as g; print(g('tf2_msgs'))")" != "$ROOT/install/tf2_msgs" ]; then
  log "using the environment's tf2_msgs"
else
  BASE_PATHS+=(compat)
fi
ws_hash() {
  { echo "${BASE_PATHS[*]}"; ls launch config; find "${BASE_PATHS[@]}" \( -name package.xml -o -name CMakeLists.txt -o -name setup.py \
      -o -name setup.cfg -o -name '*.msg' -o -name '*.srv' -o -name '*.action' \) -type f -print0 | sort -z | xargs -0 cat; } \
    | sha256sum | cut -d' ' -f1
}
WS_STAMP="$ROOT/install/.dexman-build-stamp"
want=$(ws_hash)
if [ -f "$WS_STAMP" ] && [ "$(cat "$WS_STAMP")" = "$want" ]; then
  log "workspace up to date"
else
  log "colcon build (${BASE_PATHS[*]}); about a minute the first time"
  rm -f "$WS_STAMP"
  colcon --log-base "$ROOT/log/colcon" build --base-paths "${BASE_PATHS[@]}" --symlink-install \
      --event-handlers console_cohesion- status- summary+ console_stderr- \
      --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$(command -v python)" >"$ROOT/log/colcon-build.log" 2>&1 \
    || { tail -40 "$ROOT/log/colcon-build.log" >&2; die "colcon build failed (full log: log/colcon-build.log)"; }
  echo "$want" >"$WS_STAMP"
  log "workspace built: $(ls install | grep -v '\.' | tr '\n' ' ')"
fi
# ---------------------------------------------------------------- models and robot (build outputs)
# MediaPipe hand/pose landmarker bundles, built from the model files inside the mediapipe 0.10.21
# wheel (fetched from PyPI once into .cache/models; idempotent), and the G1 + two Shadow hands model
# assembled from the installed asset packages into artifacts/robot_model (never committed).
set +u; . "$ROOT/install/setup.bash"; set -u
python -m dexman_perception.core.backends.mediapipe_models --fetch >>"$ROOT/log/setup-models.log" 2>&1 \
  || { tail -20 "$ROOT/log/setup-models.log" >&2; die "building the MediaPipe model bundles failed"; }
ROBOT_DIR="$ROOT/artifacts/robot_model"
if [ ! -f "$ROBOT_DIR/manifest.json" ] || [ -n "$(find "$ROOT/src/dexman_description/dexman_description/robot_model" \
      "$PIP_STAMP" -newer "$ROBOT_DIR/manifest.json" -print -quit)" ]; then
  python -m dexman_description.build_robot_cli --out "$ROBOT_DIR" >>"$ROOT/log/setup-models.log" 2>&1 \
    || { tail -20 "$ROOT/log/setup-models.log" >&2; die "assembling the robot model failed"; }
  log "robot model built in artifacts/robot_model"
fi
log "done. Enter the environment with: source env.sh"
