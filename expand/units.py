"""The paper's γ units and SlowFast's, converted in one place.

ArchSpec holds SlowFast's units, because that is what its configs, the
builder and the exports speak. The paper names the same six factors in its
own units (X3D §3; its X3D-S is "γτ=6, γt=13, γs=√2, γw=1, γb=2.25, γd=2.2",
which SlowFast's X3D_S.yaml builds as SAMPLING_RATE 6, NUM_FRAMES 13, crop 160,
WIDTH_FACTOR 2.0, BOTTLENECK_FACTOR 2.25, DEPTH_FACTOR 2.2):

=====  ====================  ===============================
paper  ArchSpec / SlowFast   conversion
=====  ====================  ===============================
γτ     stride                the same (temporal stride at 30 fps)
γt     frames                the same
γs     crop (pixels)         crop = 112 · γs, a multiple of 8
γw     width                 WIDTH_FACTOR = 2 · γw
γb     bottleneck            the same (inner width = γb · stage width)
γd     depth                 the same (blocks = ceil(γd · [1, 2, 5, 3]))
=====  ====================  ===============================

Tables that say γ show the paper's units; exports that write a SlowFast or
mmaction2 key write that key's units (mmaction2's ``gamma_w`` is the paper's).
"""

from __future__ import annotations

from typing import Any

from expand.rounding import CROP_DIVISOR
from expand.spec import ArchSpec

PAPER_BASE_CROP = 112  # γs = 1
PAPER_BASE_WIDTH = 2.0  # γw = 1 is SlowFast's WIDTH_FACTOR 2.0
PAPER_KEYS = ("gamma_tau", "gamma_t", "gamma_s", "gamma_w", "gamma_b", "gamma_d")
SYMBOLS = {"gamma_tau": "γτ", "gamma_t": "γt", "gamma_s": "γs", "gamma_w": "γw", "gamma_b": "γb", "gamma_d": "γd"}


def to_paper(spec: ArchSpec) -> dict[str, float]:
    """The six factors of ``spec`` in the paper's units."""
    return {
        "gamma_tau": spec.stride,
        "gamma_t": spec.frames,
        "gamma_s": spec.crop / PAPER_BASE_CROP,
        "gamma_w": spec.width / PAPER_BASE_WIDTH,
        "gamma_b": spec.bottleneck,
        "gamma_d": spec.depth,
    }


def from_paper(gamma_tau: int, gamma_t: int, gamma_s: float, gamma_w: float, gamma_b: float,
               gamma_d: float, **constants: Any) -> ArchSpec:
    """An ArchSpec from the paper's factors; the crop is rounded to the nearest multiple of 8."""
    crop = int(round(PAPER_BASE_CROP * gamma_s / CROP_DIVISOR)) * CROP_DIVISOR
    return ArchSpec(int(gamma_t), int(gamma_tau), crop, width=PAPER_BASE_WIDTH * gamma_w,
                    bottleneck=gamma_b, depth=gamma_d, **constants)


__all__ = ["to_paper", "from_paper", "PAPER_KEYS", "SYMBOLS", "PAPER_BASE_CROP", "PAPER_BASE_WIDTH"]
