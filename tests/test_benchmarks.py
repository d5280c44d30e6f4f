"""benchmarks/gpu_check.sh in its dry mode: the GPU check cannot rot between GPU sessions (issue 21)."""

import os
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _probe_wheel(folder) -> None:
    """A one-module wheel, written by hand: what --wheels installs must be importable by the check."""
    name, version = "x3d_wheel_probe", "1.0"
    info = f"{name}-{version}.dist-info"
    files = {f"{name}.py": "VALUE = 42\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as whl:
        for path, text in files.items():
            whl.writestr(path, text)


def test_gpu_check_dry_run_runs_every_step_on_the_cpu(tmp_path):
    """Also through --wheels (an offline GPU node): the wheels go under $TMPDIR and onto the path."""
    out, wheels = tmp_path / "gpu_check", tmp_path / "wheels"
    wheels.mkdir()
    _probe_wheel(wheels)
    proc = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh"), "--dry-run", "--out", str(out),
                           "--wheels", str(wheels)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PY": sys.executable, "TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    summary = (out / "summary.txt").read_text()
    for step in ("1/4 model throughput", "2/4 one-step search", "3/4 data wait", "4/4 a broken GPU", "done:"):
        assert step in summary, step
    assert "installed from --wheels: x3d_wheel_probe-1.0" in summary
    assert "packages: av " in summary and "fvcore " in summary
    assert "train clips/s" in (out / "throughput_fp32.txt").read_text()
    assert (out / "search" / "steps.csv").read_text().count("\n") == 8  # header, basis, six candidates
    assert "data_wait" in (out / "trial_overhead.txt").read_text()
    errors = (out / "device_errors.txt").read_text().splitlines()
    assert [line.split()[:2] for line in errors] == [["assert", "PASS"], ["oom", "PASS"]]


def test_gpu_check_refuses_an_unknown_option(tmp_path):
    proc = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh"), "--fast"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown option --fast" in proc.stderr


def test_gpu_check_refuses_a_wheels_folder_without_wheels(tmp_path):
    proc = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh"), "--wheels", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no wheels in --wheels" in proc.stderr


def _benchmark(name: str):
    """A script of benchmarks/ as a module (they are not a package)."""
    import importlib

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def test_wheelhouse_plans_the_tested_versions_without_torch_and_drops_what_the_machine_has(tmp_path):
    """benchmarks/wheelhouse.py offline: what it would fetch, read from the installed metadata."""
    from importlib import metadata

    wh = _benchmark("wheelhouse")
    reqs = wh.requirements()
    assert not any(r.startswith("torch") for r in reqs) and any(r.startswith("ray") for r in reqs)
    needed = wh.closure(reqs)
    assert "torch" not in needed
    assert needed["fvcore"] == (metadata.version("fvcore"), True)  # source-only upstream: built here
    assert needed["iopath"][1] is True and needed["av"] == (metadata.version("av"), False)
    assert "tensorboardx" in needed  # ray[tune]'s extra is followed
    have = tmp_path / "freeze.txt"
    have.write_text("numpy==2.0\nPyYAML==6.0  # comment\nTyping_Extensions\n-e git+x#egg=y\n")
    assert wh.have_names(str(have)) == {"numpy", "pyyaml", "typing-extensions"}


def test_wheelhouse_slims_ray_to_what_tune_needs(tmp_path):
    wh = _benchmark("wheelhouse")
    path = tmp_path / "ray-9-cp312-cp312-manylinux2014_x86_64.whl"
    with zipfile.ZipFile(path, "w") as whl:
        for name in ("ray/__init__.py", "ray/jars/ray_dist.jar", "ray/dashboard/client/build/main.js",
                     "ray/dashboard/modules/x.py", "ray/tune/__init__.py"):
            whl.writestr(name, "x" * 1000)
    assert wh.slim(str(path)) > 0
    assert sorted(zipfile.ZipFile(path).namelist()) == ["ray/__init__.py", "ray/dashboard/modules/x.py",
                                                        "ray/tune/__init__.py"]


def test_wheelhouse_bad_input_exits_2(tmp_path):
    for args, message in ((["--python", "3.x"], "--python must look like 3.12"),
                          (["--have", str(tmp_path / "gone.txt")], "--have: no such file")):
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "wheelhouse.py"), str(tmp_path / "w"),
                               *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_model_throughput_halves_the_batch_after_an_oom_and_says_which_ran(monkeypatch):
    """The GPU check must not die on one preset that does not fit the card at batch 16."""
    import pytest
    import torch

    mt = _benchmark("model_throughput")
    tried = []

    def bench(spec, device, amp, channels_last, batch, min_seconds):
        tried.append(batch)
        if batch > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return {"train_clips_s": 1.0}

    monkeypatch.setattr(mt, "bench_spec", bench)
    assert mt.bench_fitting(None, torch.device("cpu"), False, True, 16, 0.1) == {"train_clips_s": 1.0, "batch": 4}
    assert tried == [16, 8, 4]
    monkeypatch.setattr(mt, "bench_spec", lambda *a: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("oom")))
    with pytest.raises(torch.cuda.OutOfMemoryError):
        mt.bench_fitting(None, torch.device("cpu"), False, True, 2, 0.1)


def test_flop_count_benchmark_times_the_three_ways_and_checks_they_agree(monkeypatch):
    """A run that finds two ways counting differently fails (exit 1), so the README's figure cannot hide one."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "flop_count.py"), "--presets", "X2D",
                           "--no-tiny", "--repeat", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = next(line for line in proc.stdout.splitlines() if line.startswith("X2D"))
    assert row.split()[-2].endswith("x") and row.split()[-1].endswith("x")  # two speed-ups
    assert "same Complexity" in proc.stdout

    fc = _benchmark("flop_count")
    real = fc._count_complexity
    monkeypatch.setattr(fc, "_count_complexity", lambda spec, whole=False, channels_last=True:
                        real(spec.replace(frames=2) if whole and not channels_last else spec))
    assert fc.main(["--presets", "X2D", "--no-tiny", "--repeat", "1"]) == 1


def test_device_errors_fails_a_case_whose_verdict_does_not_match_what_the_process_can_do(monkeypatch):
    """The check must be able to fail: here the OOM test is told nothing is an OOM."""
    device_errors = _benchmark("device_errors")
    assert device_errors.run_case("oom", "cpu")["result"] == "PASS"
    monkeypatch.setattr("expand.device.is_out_of_memory", lambda exc: False)
    assert device_errors.run_case("oom", "cpu")["result"] == "FAIL"
    monkeypatch.setattr("expand.errors.broken_device", lambda exc: "CUDA error: pretend")
    r = device_errors.run_case("assert", "cpu")
    assert r["verdict"] == "broken" and r["still_computes"] and r["result"] == "FAIL"
