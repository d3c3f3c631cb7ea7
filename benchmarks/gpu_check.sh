#!/usr/bin/env bash
# The GPU check (issue #14): everything that needs a CUDA device, in one run of at most 8 minutes, one report.
#
#   benchmarks/gpu_check.sh [--dry-run] [--out DIR]
#
# Phases, each under its own time limit (100 + 120 + 55 + 150 + 50 s: under 8 minutes in all; a phase that overruns
# is stopped and reported as such):
#   1. tests     the CUDA-marked tests (pytest -m cuda): AMP training + resume, CPU <-> CUDA checkpoints,
#                fp32 / fp16 / bf16 / compiled translation against CPU fp32, the state update's reproducibility
#   2. bench     benchmarks/bench_model.py on CUDA: eager fp32 / fp16 / bf16 and torch.compile (1920x1080 only:
#                each costs a compilation), full and lite, at 1920x1080 (first), 1280x720 and 640x360, with the
#                target check (full, 1080p: >= 60 frames/s, p95 <= 20 ms)
#      bench_onnx  the same with ONNX Runtime's CUDA and TensorRT execution providers at 1920x1080 (where the
#                installed onnxruntime has them: the row says which providers it has otherwise)
#   3. train     sim2real-train config/train_lite.yaml (amp: true) on CUDA for 100 s, stopped with SIGTERM, then
#                resumed from its newest checkpoint for 50 more steps (exit 0, export written, losses finite)
#   4. node      benchmarks/bench_node.py: sim -> translate_node (device:=cuda) -> subscriber, 1920x1080 at 60 Hz
#
# --dry-run (and any machine without CUDA): the same phases on the CPU with tiny settings, CUDA rows skipped with a
# message, so the script cannot rot (test/test_gpu_check.py runs it). Needs the project's environment: .venv (made
# by scripts/setup.sh) when present, else $PYTHON / python3 with the requirements installed; no network.
# The report is printed at the end and written to DIR/gpu_check_report.md (DIR: --out, else $OUT, else a
# temporary folder); each phase's full output is in DIR/<phase>.log.
set -u -o pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

DRY=0
OUT_DIR=${OUT:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT_DIR=$2; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (valid: --dry-run, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done
OUT_DIR=${OUT_DIR:-$(mktemp -d -t gpu_check.XXXXXX)}
mkdir -p "$OUT_DIR"
REPORT=$OUT_DIR/gpu_check_report.md
: > "$REPORT"
# shellcheck disable=SC1091
if [ -f .venv/env.sh ]; then . .venv/env.sh; fi
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || PY=python

CUDA=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo "none")
if [ "$CUDA" = "none" ]; then
  echo "gpu_check.sh: $PY cannot import torch; set up the environment first (scripts/setup.sh)" >&2
  exit 2
fi
if [ "$CUDA" = "0" ] && [ "$DRY" = "0" ]; then
  DRY=1
  NOTE="no CUDA device here: running as --dry-run (CPU, tiny settings, CUDA rows skipped)"
else
  NOTE=""
fi

say() { echo "$*" >> "$REPORT"; }
declare -a SUMMARY=()

# phase NAME LIMIT_S COMMAND...: run under a time limit, keep the log, put the output's tail in the report
phase() {
  local name=$1 limit=$2; shift 2
  local log=$OUT_DIR/$name.log start=$SECONDS rc status
  timeout --signal=INT --kill-after=10 "$limit" "$@" > "$log" 2>&1
  rc=$?
  case $rc in
    0) status="ok" ;;
    124|137) status="TIMED OUT after ${limit} s" ;;
    *) status="FAILED (exit $rc)" ;;
  esac
  SUMMARY+=("| $name | $status | $((SECONDS - start)) s |")
  say "## $name: $status ($((SECONDS - start)) s)"
  say '```'
  tail -n "${TAIL_LINES:-40}" "$log" >> "$REPORT"
  say '```'
  say ""
  return 0
}

make_target_folder() {  # real frames from ../shared/data when present, else rendered stand-ins (no network)
  local dir=$OUT_DIR/target
  if [ -d "$REPO/../shared/data/real/seq0000" ]; then
    echo "$REPO/../shared/data/real/seq0000"
    return
  fi
  "$PY" - "$dir" <<'EOF'
import sys
from pathlib import Path
import cv2
from sim_bridge.procedural import ProceduralSimulator, SimConfig
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
sim = ProceduralSimulator(SimConfig(width=512, height=256, seed=7, time_of_day=17.5))
for i in range(8):
    cv2.imwrite(str(out / f"frame_{i:03d}.png"), sim.frame(i * 5).rgb[:, :, ::-1])
EOF
  echo "$dir"
}

train_phase() {  # a run stopped after $1 s (0: a run of $2 steps), then resumed for $3 more steps
  local seconds=$1 steps=$2 more=$3; shift 3
  local run=$OUT_DIR/train_run target
  target=$(make_target_folder)
  rm -rf "$run"
  echo "target frames: $target"
  local args=(config/train_lite.yaml "out_dir=$run" "target.paths=[$target]" "$@")
  if [ "$seconds" -gt 0 ]; then
    timeout --signal=TERM "$seconds" "$PY" -m sim2real.training.cli "${args[@]}" "steps=$steps"
    echo "first run stopped with exit $? after $seconds s (SIGTERM)"
  else
    "$PY" -m sim2real.training.cli "${args[@]}" "steps=$steps" || return 1
  fi
  local done_steps
  done_steps=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['checkpoint'].split('_')[1].lstrip('0') or 0)" \
    "$run/checkpoints/latest.json") || { echo "no checkpoint written"; return 1; }
  echo "newest checkpoint: step $done_steps"
  "$PY" -m sim2real.training.cli "${args[@]}" "steps=$((done_steps + more))" || return 1
  "$PY" - "$run" "$done_steps" <<'EOF'
import json, math, sys
from pathlib import Path
run, resumed_at = Path(sys.argv[1]), int(sys.argv[2])
rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
train = [r for r in rows if "g/total" in r]
rates = [r["steps_per_s"] for r in train if r.get("steps_per_s")]
bad = [r["step"] for r in train if not all(math.isfinite(v) for k, v in r.items() if "/" in k)]
print(f"steps logged: {len(train)} (last {train[-1]['step']}), resumed at {resumed_at}, "
      f"median {sorted(rates)[len(rates) // 2]:.1f} steps/s, last g/total {train[-1]['g/total']:.3f}, "
      f"non-finite rows: {bad or 'none'}, export: {(run / 'model.safetensors').is_file()}")
sys.exit(1 if bad or not (run / "model.safetensors").is_file() else 0)
EOF
}

cuda_tests=$(grep -l "pytest.mark.cuda" test/test_*.py | tr '\n' ' ')
say "# GPU check — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say ""
say "$("$PY" -c "import torch; print(f'torch {torch.__version__}, CUDA build {torch.version.cuda}, devices:', \
  [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] or 'none')")"
say "git: $(git rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout') $(git status --porcelain 2>/dev/null | wc -l | tr -d ' ') changed files"
[ -n "$NOTE" ] && say "$NOTE"
say ""

export -f train_phase make_target_folder
export PY OUT_DIR REPO
TINY_TRAIN=(device=cpu amp_dtype=bf16 batch_size=1 "crop=[32,64]" resize_short=64 num_workers=0 source.frames=4
  source.sim_width=128 source.sim_height=64 discriminator.base_channels=16 discriminator.num_scales=1
  aux.box_channels=8 aux.seg_channels=8 aux.box_hidden=32 checkpoint_every=1 val_every=1000 image_every=1000
  log_every=1)
if [ "$DRY" = "1" ]; then
  TAIL_LINES=25
  # shellcheck disable=SC2086
  phase tests 120 "$PY" -m pytest -q -p no:cacheprovider -m cuda -rs $cuda_tests
  phase bench 120 "$PY" benchmarks/bench_model.py --devices cpu,cuda --sizes 64x32 --presets lite --warmup 0 \
    --frames 1 --budget 1 --threads 1 --no-onnx
  phase bench_onnx 60 "$PY" benchmarks/bench_model.py --devices cuda --sizes 64x32 --presets lite --onnx-only
  phase train 180 bash -c 'train_phase "$@"' train 0 1 1 "${TINY_TRAIN[@]}"
  phase node 60 bash -c "'$PY' benchmarks/bench_node.py --help > /dev/null && echo 'skipped: the node end to end \
needs CUDA (bench_node.py --device cuda --precision auto parses; run without --dry-run on a GPU)'"
else
  TAIL_LINES=60
  # shellcheck disable=SC2086
  phase tests 100 "$PY" -m pytest -q -p no:cacheprovider -m cuda -rs $cuda_tests
  phase bench 120 "$PY" benchmarks/bench_model.py --devices cuda --sizes 1920x1080,1280x720,640x360 \
    --presets full,lite --warmup 3 --frames 40 --budget 1.5 --threads "$(nproc)" --compile-sizes 1920x1080 --no-onnx
  phase bench_onnx 55 "$PY" benchmarks/bench_model.py --devices cuda --sizes 1920x1080 --presets full,lite \
    --warmup 3 --frames 40 --budget 1.5 --threads "$(nproc)" --onnx-only
  phase train 150 bash -c 'train_phase "$@"' train 100 1000000 50 device=cuda batch_size=8 checkpoint_every=50 \
    val_every=500 image_every=500 log_every=20
  phase node 50 "$PY" benchmarks/bench_node.py --backends torch --device cuda --precision auto --source replay \
    --rate 60 --width 1920 --height 1080 --duration 25 --settle 5 --frames 30 --threads "$(nproc)"
fi

{
  echo "## summary"
  echo "| phase | status | time |"
  echo "|---|---|---|"
  printf '%s\n' "${SUMMARY[@]}"
  echo ""
  echo "total $SECONDS s; logs in $OUT_DIR"
} >> "$REPORT"
cat "$REPORT"
