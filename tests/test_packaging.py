"""A wheel install (not -e) works from an empty folder: shipped search spaces and experiments included."""

import os
import subprocess
import sys
import sysconfig

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """A fresh venv holding only the built wheel; the dependencies come from this environment via a .pth."""
    base = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            ROOT, "-w", str(base / "dist")], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = [p for p in os.listdir(base / "dist") if p.endswith(".whl")]
    env_dir = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    python = str(env_dir / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # only the dependencies' folder: a .pth line is not a site dir, so the checkout's editable finder stays out
    with open(os.path.join(site, "_deps.pth"), "w") as fh:
        fh.write(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                              str(base / "dist" / wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    work = base / "empty"
    work.mkdir()
    return env_dir, work


def _run(env_dir, work, *args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(env_dir / "bin" / "x3d-expand"), *args], cwd=work, capture_output=True,
                          text=True, timeout=300, env=env)


def test_the_wheel_ships_the_search_spaces_and_runs_presets_from_an_empty_folder(wheel_env):
    env_dir, work = wheel_env
    where = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import expand; print(expand.__file__)"],
                           cwd=work, capture_output=True, text=True, check=True).stdout
    assert str(env_dir) in where and ROOT not in where  # the installed copy, not the checkout
    r = _run(env_dir, work, "presets")
    assert r.returncode == 0, r.stderr
    assert "X3D-M" in r.stdout and "X2D" in r.stdout


def test_the_wheel_runs_an_oracle_search_by_experiment_name(wheel_env):
    env_dir, work = wheel_env
    r = _run(env_dir, work, "search", "oracle", "--out", "run", "--max-steps", "2", "--targets", "0.005",
             "--quiet")
    assert r.returncode == 0, r.stderr
    assert os.path.isfile(work / "run" / "steps.csv") and "basis" in r.stdout
    state = (work / "run" / "state.json").read_text()
    assert "site-packages" in state and "experiments/oracle.yaml" in state  # resolved from package data
    bad = _run(env_dir, work, "search", "no_such_experiment")
    assert bad.returncode == 2 and "shipped: " in bad.stderr and "oracle" in bad.stderr
