# DexMan-ROS environment. After `bash scripts/setup.sh`:   source env.sh
# Puts this shell in the project's environment: the venv (with pip ROS 2 wheels, or a sourced
# system ROS 2 underneath), the colcon overlay in install/, DDS kept on this machine, logs in log/.
# `source env.sh --no-overlay` skips install/setup.bash (used by the setup script itself).
_dexman_root=$(cd "$(dirname "${BASH_SOURCE[0]:-${(%):-%x}}")" && pwd)
if [ ! -x "$_dexman_root/.venv/bin/python" ]; then
  echo "env.sh: no .venv in $_dexman_root: run 'bash scripts/setup.sh' first" >&2
  return 1 2>/dev/null || exit 1
fi
_dexman_mode=pip
if [ -n "${ROS_DISTRO:-}" ] && [ -d "/opt/ros/${ROS_DISTRO}" ]; then _dexman_mode=system; fi
if [ -f "$_dexman_root/.venv/.dexman-ros-distro" ]; then   # written by setup in system mode
  _dexman_distro=$(cat "$_dexman_root/.venv/.dexman-ros-distro")
  if [ -z "${ROS_DISTRO:-}" ] && [ -f "/opt/ros/$_dexman_distro/setup.bash" ]; then
    . "/opt/ros/$_dexman_distro/setup.bash"; _dexman_mode=system
  fi
fi
. "$_dexman_root/.venv/bin/activate"
export DEXMAN_ROOT="$_dexman_root"
if [ "$_dexman_mode" = pip ]; then
  # the ROS wheels install like a ROS prefix into the venv
  case ":${AMENT_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;; *)
    export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
    export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}";;
  esac
  # ros2cli is not on PyPI: a small stand-in for `ros2 run|launch|pkg prefix`
  case ":$PATH:" in *":$_dexman_root/scripts/ros2cli:"*) ;; *) export PATH="$_dexman_root/scripts/ros2cli:$PATH";; esac
fi
# Keep DDS on this machine: no multicast discovery beyond localhost, a loopback-only Fast DDS
# profile with a shared-memory segment large enough for 640x480 colour and depth images.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export FASTDDS_DEFAULT_PROFILES_FILE="$_dexman_root/config/fastdds_localhost.xml"
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-0}
export ROS_LOG_DIR="$_dexman_root/log/ros"
export RCUTILS_COLORIZED_OUTPUT=${RCUTILS_COLORIZED_OUTPUT:-0}
export MUJOCO_GL=${MUJOCO_GL:-egl}           # offscreen rendering without a display
if [ "${1:-}" != "--no-overlay" ] && [ -f "$_dexman_root/install/setup.bash" ]; then
  if [ -n "${ZSH_VERSION:-}" ]; then . "$_dexman_root/install/setup.zsh"; else . "$_dexman_root/install/setup.bash"; fi
fi
unset _dexman_root _dexman_mode _dexman_distro
