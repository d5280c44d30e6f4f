def test_a_worker_sweeps_the_scratch_folders_of_dead_workers_and_keeps_live_ones(tmp_path):
    import os
    import subprocess
    import sys

    from expand.search.scratch import SCRATCH_PREFIX, sweep_dead_scratch

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)  # a process that has exited (its pid not yet reused: checked below)
    assert subprocess.run(["kill", "-0", str(dead_pid)], capture_output=True).returncode != 0
    dead = tmp_path / f"{SCRATCH_PREFIX}{dead_pid}-s01-width-abc"
    live = tmp_path / f"{SCRATCH_PREFIX}{os.getpid()}-s01-depth-def"
    other = tmp_path / "x3d-expand-cache-1"  # not a scratch folder: never touched
    for folder in (dead, live, other):
        (folder / "ckpt").mkdir(parents=True)
        (folder / "ckpt" / "model.pt").write_bytes(b"x" * 1000)
    assert sweep_dead_scratch(str(tmp_path)) == [dead.name]
    assert not dead.exists() and (live / "ckpt" / "model.pt").exists() and other.exists()
