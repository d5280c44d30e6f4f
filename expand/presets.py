"""The published X3D family and the X2D basis, as ArchSpecs.

XS, S, M and L are SlowFast's configs/Kinetics/X3D_*.yaml (400 classes).
XL has no public config: the paper gives 16x5 frames, a 356 px crop and
11.0 M parameters; we take L's factors at that crop and derive the width
factor 2.9 as the 0.1-grid value whose parameter count is closest to 11.0 M
(11.09 M). Its FLOPs are therefore ours, not the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass

from expand.errors import InputError
from expand.spec import ArchSpec


@dataclass(frozen=True)
class Preset:
    name: str
    spec: ArchSpec
    test_crop: int
    source: str


def test_crop_for(crop: int) -> int:
    """SlowFast's X3D test crops are int(train crop x 8/7): 160->182, 224->256, 312->356."""
    return int(crop * 8 / 7)


def _x3d(frames: int, stride: int, crop: int, depth: float, width: float = 2.0) -> ArchSpec:
    return ArchSpec(frames, stride, crop, width=width, bottleneck=2.25, depth=depth)


def _presets() -> dict[str, Preset]:
    from expand.config import load_search_space

    basis = load_search_space("x3d_paper").basis
    items = [
        Preset("X2D", basis, basis.crop, "search_spaces/x3d_paper.yaml basis"),
        Preset("X3D-XS", _x3d(4, 12, 160, 2.2), 182, "SlowFast configs/Kinetics/X3D_XS.yaml"),
        Preset("X3D-S", _x3d(13, 6, 160, 2.2), 182, "SlowFast configs/Kinetics/X3D_S.yaml"),
        Preset("X3D-M", _x3d(16, 5, 224, 2.2), 256, "SlowFast configs/Kinetics/X3D_M.yaml"),
        Preset("X3D-L", _x3d(16, 5, 312, 5.0), 356, "SlowFast configs/Kinetics/X3D_L.yaml"),
        Preset(
            "X3D-XL",
            _x3d(16, 5, 356, 5.0, width=2.9),
            test_crop_for(356),
            "derived: paper's 16x5 @ 356 px, width fitted to its 11.0 M params",
        ),
    ]
    return {p.name: p for p in items}


_CACHE: dict[str, Preset] = {}


def presets() -> dict[str, Preset]:
    if not _CACHE:
        _CACHE.update(_presets())
    return dict(_CACHE)


def get_preset(name: str) -> Preset:
    table = presets()
    for key, preset in table.items():
        if key.lower() == name.lower() or key.lower().replace("x3d-", "") == name.lower():
            return preset
    raise InputError(f"unknown preset {name!r} (presets: {', '.join(table)})")
