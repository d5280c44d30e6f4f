#!/usr/bin/env bash
# One short GPU check (issue 21), everything written to --out DIR (default $OUT, else gpu_check_out):
#   1. model_throughput.py on CUDA for X3D-XS/S/M/L: train and inference clips/s, peak memory,
#      achieved TFLOP/s; fp32 vs AMP, channels_last_3d on vs off (same run, same card)
#   2. a one-step search of experiments/synthetic_gpu.yaml on Ray with half a GPU per trial
#   3. one trial's data wait on the GPU (trial_overhead.py)
#   4. a broken GPU told from an OOM on this card and torch (device_errors.py)
# Under 8 minutes on one H100-class GPU, after `make install` and nothing else.
# --dry-run: the same steps on the CPU at toy sizes (CI runs it), so the script cannot rot
# between the sessions that have a GPU.
# --wheels DIR: a machine that cannot reach PyPI but has a CUDA torch (an offline node):
#   the wheels benchmarks/wheelhouse.py wrote are installed into a folder under /tmp and put
#   on PYTHONPATH first (the project itself runs from this checkout). Without Ray there the
#   search runs on the serial runner, and the summary says so.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-gpu_check_out}"
DRY=0
WHEELS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT_DIR="$2"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --wheels) WHEELS="$2"; shift 2 ;;
    *) echo "gpu_check.sh: unknown option $1 (use --out DIR, --dry-run, --wheels DIR)" >&2; exit 2 ;;
  esac
done
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
if [ -n "$WHEELS" ]; then
  ls "$WHEELS"/*.whl > /dev/null 2>&1 || { echo "gpu_check.sh: no wheels in --wheels $WHEELS" >&2; exit 2; }
  SITE="${TMPDIR:-/tmp}/x3d-expand-site"
  rm -rf "$SITE"
  # --no-deps: the folder holds exactly what the machine lacks (wheelhouse.py --have)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" \
    $(ls "$WHEELS"/*.whl | grep -v '/x3d_expand-')
  export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
  export X3D_CHECK_SITE="$SITE"
fi
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
SUMMARY="$OUT_DIR/summary.txt"
: > "$SUMMARY"
log() { echo "[$(date +%T)] $*" | tee -a "$SUMMARY"; }

"$PY" - > "$OUT_DIR/env.txt" <<'PYEOF'
import os, platform, torch
from importlib import metadata
print("torch", torch.__version__, "python", platform.python_version())
print("cuda available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0), "bf16", torch.cuda.is_bf16_supported())
site = os.environ.get("X3D_CHECK_SITE")
versions = []
for name in ("av", "fvcore", "ray", "numpy", "pandas"):
    try:
        dist = metadata.distribution(name)
        where = " (--wheels)" if site and str(dist.locate_file("")).startswith(site) else ""
        versions.append(f"{name} {dist.version}{where}")
    except metadata.PackageNotFoundError:
        versions.append(f"{name} not installed")
print("packages:", ", ".join(versions))
if site:  # what this Python finds there: the folder must be on its path, not just written
    found = {f"{d.metadata['Name']}-{d.version}" for d in metadata.distributions()
             if str(d.locate_file("")).startswith(site)}
    print("installed from --wheels:", " ".join(sorted(found)) or "nothing importable")
PYEOF
cat "$OUT_DIR/env.txt" >> "$SUMMARY"

if [ "$DRY" = 1 ]; then
  DEVICE=cpu; PRESETS="X2D"; SECS=0.1; BATCH="--batch 2"; AMP_RUNS="none"; LAYOUTS=""
  DATA="$OUT_DIR/data"; SYNTH="--classes 2 --videos-per-class 3 --val-per-class 1 --frames 16 --size 64"
else
  DEVICE=cuda; PRESETS="X3D-XS X3D-S X3D-M X3D-L"; SECS=3; BATCH=""; AMP_RUNS="amp"; LAYOUTS="--no-channels-last"
  DATA="data/synthetic_gpu"; SYNTH="--classes 8 --videos-per-class 80 --val-per-class 25 --frames 64 --size 160"
fi

log "1/4 model throughput on $DEVICE ($PRESETS)"
for cl in "" $LAYOUTS; do
  "$PY" benchmarks/model_throughput.py --device "$DEVICE" --presets $PRESETS --seconds "$SECS" $BATCH $cl \
    | tee "$OUT_DIR/throughput_fp32${cl:+_contiguous}.txt" >> "$SUMMARY"
  if [ "$AMP_RUNS" = amp ]; then
    "$PY" benchmarks/model_throughput.py --device "$DEVICE" --amp --presets $PRESETS --seconds "$SECS" $cl \
      | tee "$OUT_DIR/throughput_amp${cl:+_contiguous}.txt" >> "$SUMMARY"
  fi
done

log "2/4 one-step search of experiments/synthetic_gpu.yaml"
"$PY" -m expand.cli data synth "$DATA" $SYNTH >> "$SUMMARY"  # one encoding process per core
EXP="$OUT_DIR/experiment.yaml"
"$PY" - "$DATA" "$EXP" "$DRY" >> "$SUMMARY" <<'PYEOF'
import os, sys, yaml
data, out, dry = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
exp = yaml.safe_load(open("experiments/synthetic_gpu.yaml"))
exp["search_space"] = os.path.abspath("search_spaces/x3d_paper.yaml")
exp["data"]["root"] = data
if dry:  # the same search on the CPU, serial, 2 steps per trial, the cheap-to-count CPU space
    exp["search_space"] = os.path.abspath("search_spaces/tiny_cpu.yaml")
    exp["trial"].update(device="cpu", workers=0, amp="off")
    exp["resources"].update(gpus_per_trial=0, cpus_per_trial=1)
    exp["schedule"].update(iterations=2, batch_size=2)
    exp["search"]["runner"] = "serial"
import importlib.util
if exp["search"].get("runner", "ray") == "ray" and importlib.util.find_spec("ray") is None:
    exp["search"]["runner"] = "serial"  # an offline machine given no Ray (wheelhouse.py --no-ray)
    print("ray is not installed: the search runs on the serial runner (one trial at a time)")
open(out, "w").write(yaml.safe_dump(exp))
PYEOF
"$PY" -m expand.cli data cache "$EXP" >> "$SUMMARY"  # all cores, before the trials: they time steady state
"$PY" -m expand.cli search "$EXP" --out "$OUT_DIR/search" --targets | tee "$OUT_DIR/search.txt" | tail -n 20 >> "$SUMMARY"

log "3/4 data wait of one trial on $DEVICE"
"$PY" benchmarks/trial_overhead.py --experiment "$EXP" --prefetch 0 \
  | tee "$OUT_DIR/trial_overhead.txt" >> "$SUMMARY"
log "4/4 a broken GPU told from an OOM (device_errors.py)"
"$PY" benchmarks/device_errors.py --device "$DEVICE" | tee "$OUT_DIR/device_errors.txt" >> "$SUMMARY"
log "done: $OUT_DIR/summary.txt"
