"""Wheels for a GPU machine that cannot reach PyPI but has its own (CUDA) torch.

An offline cluster node, or a lent test machine: run this where pip can
download, copy DIR there, then ``bash benchmarks/gpu_check.sh --wheels DIR``
(or ``pip install --no-index --find-links DIR x3d-expand`` into an environment
that has torch)::

    python benchmarks/wheelhouse.py DIR [--python 3.12] [--have FILE] [--no-ray] [--slim-ray]

DIR gets the project's wheel and every dependency's wheel for that Python on
manylinux x86-64, torch excepted: the machine keeps its own CUDA build.
Versions are those installed in the Python that runs this (the ones the
tests ran with; markers are read for this Python). Dependencies published only as source
(fvcore, iopath) are built here into pure-Python wheels, which any Python 3
takes. ``--have`` drops what the machine already has (a list of names, or its
``pip freeze``), so only what is missing travels.
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
import subprocess
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]
# Tune needs neither: Ray's Java workers and the dashboard's web client (31 and 2.4 MB compressed of 79)
RAY_SLIM = ("ray/jars/", "ray/dashboard/client/build/")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_name(path: str) -> str:
    return normalize(os.path.basename(path).split("-")[0])


def requirement_name(requirement: str) -> str:
    from packaging.requirements import Requirement

    return normalize(Requirement(requirement).name)


def requirements() -> list[str]:
    """setup.cfg's install_requires, torch left out."""
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    reqs = [r.strip() for r in cfg["options"]["install_requires"].splitlines() if r.strip()]
    return [r for r in reqs if requirement_name(r) != "torch"]


def have_names(path: str) -> set[str]:
    """Package names from a file of names or `pip freeze` / `pip list` lines."""
    names = set()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.split("#")[0].strip()
            if line and not line.startswith("-"):
                names.add(normalize(re.split(r"[\s=<>@;\[]", line)[0]))
    return names


def closure(reqs: list[str]) -> dict[str, tuple[str, bool]]:
    """Every installed distribution ``reqs`` need here: name -> (version, pure Python).

    Walks the installed metadata (markers evaluated for this Python), so the
    target gets the versions the tests ran with.
    """
    from importlib import metadata

    from packaging.requirements import Requirement

    found: dict[str, tuple[str, bool]] = {}
    todo = [(Requirement(r), set(Requirement(r).extras)) for r in reqs]
    while todo:
        req, extras = todo.pop()
        name = normalize(req.name)
        if name in found or name == "torch":
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            sys.exit(f"wheelhouse: {req.name} is not installed here; run `make install` first")
        wheel = dist.read_text("WHEEL") or ""
        found[name] = (dist.version, "Root-Is-Purelib: true" in wheel)
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in (extras or {""})):
                todo.append((sub, set(sub.extras)))
    return found


def fetch(name: str, version: str, pure: bool, out: str, python: str) -> None:
    """One wheel: the binary for ``python`` on manylinux x86-64, or a pure one (built here if need be)."""
    pin = f"{name}=={version}"
    base = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", out]
    if pure:
        if subprocess.run([*base, pin], capture_output=True).returncode == 0:
            return
        print(f"building a wheel of {pin} (published as source only)", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, pin], check=True)
        return
    proc = subprocess.run([*base, "--python-version", python, "--implementation", "cp",
                           *[f"--platform={p}" for p in PLATFORMS], pin], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"wheelhouse: no wheel of {pin} for Python {python} on manylinux x86-64")


def slim(path: str) -> int:
    """Rewrite a Ray wheel without RAY_SLIM; returns the bytes saved."""
    before = os.path.getsize(path)
    fd, tmp = tempfile.mkstemp(suffix=".whl", dir=os.path.dirname(path))
    os.close(fd)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if not item.filename.startswith(RAY_SLIM):
                dst.writestr(item, src.read(item.filename))
    os.replace(tmp, path)
    return before - os.path.getsize(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="folder to write the wheels to")
    ap.add_argument("--python", default="3.12", help="the target machine's Python, X.Y (default 3.12)")
    ap.add_argument("--have", help="names (or `pip freeze` lines) of what the target has: those wheels are dropped")
    ap.add_argument("--no-ray", action="store_true", help="leave Ray out (gpu_check.sh then searches serially)")
    ap.add_argument("--slim-ray", action="store_true", help="drop Ray's Java jar and dashboard client")
    args = ap.parse_args(argv)
    if not re.fullmatch(r"3\.\d+", args.python):
        ap.error(f"--python must look like 3.12, got {args.python!r}")
    if args.have and not os.path.isfile(args.have):
        ap.error(f"--have: no such file {args.have}")
    out = os.path.abspath(args.dir)
    os.makedirs(out, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, ROOT], check=True)
    drop = have_names(args.have) if args.have else set()
    drop.add("torch")
    if args.no_ray:
        drop.add("ray")
    needed = closure([r for r in requirements() if requirement_name(r) not in drop])
    for name, (version, pure) in sorted(needed.items()):
        if name not in drop:
            fetch(name, version, pure, out, args.python)
    kept = 0
    for name in sorted(os.listdir(out)):
        path = os.path.join(out, name)
        if not name.endswith(".whl"):
            continue
        if wheel_name(name) in drop and wheel_name(name) != "x3d-expand":
            os.remove(path)
            continue
        if args.slim_ray and wheel_name(name) == "ray":
            print(f"ray: {slim(path) / 2**20:.0f} MB of Java jar and dashboard client left out")
        kept += os.path.getsize(path)
    names = sorted(n for n in os.listdir(out) if n.endswith(".whl"))
    print(f"{len(names)} wheels, {kept / 2**20:.1f} MB in {out}:")
    for n in names:
        print(f"  {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
