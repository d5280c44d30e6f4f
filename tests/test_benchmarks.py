"""benchmarks/gpu_check.sh in its dry mode: the GPU check cannot rot between GPU sessions (issue 21)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_check_dry_run_runs_every_step_on_the_cpu(tmp_path):
    out = tmp_path / "gpu_check"
    proc = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh"), "--dry-run", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, env={**os.environ, "PY": sys.executable})
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    summary = (out / "summary.txt").read_text()
    for step in ("1/3 model throughput", "2/3 one-step search", "3/3 data wait", "done:"):
        assert step in summary, step
    assert "train clips/s" in (out / "throughput_fp32.txt").read_text()
    assert (out / "search" / "steps.csv").read_text().count("\n") == 8  # header, basis, six candidates
    assert "data_wait" in (out / "trial_overhead.txt").read_text()


def test_gpu_check_refuses_an_unknown_option(tmp_path):
    proc = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh"), "--fast"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown option --fast" in proc.stderr
