"""ArchSpec: the one currency of the project.

An ArchSpec holds the six expansion factors of X3D plus the basis constants
they multiply. The coordinator, the FLOP counter, the model builder, the clip
sampler and the tables all take an ArchSpec; nothing re-derives factors from a
built model. It is frozen and hashable so it can key caches and dict lookups,
and it validates itself so that a bad factor fails with the field's name before
any network is built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from expand.errors import SpecError
from expand.registry import Registry
from expand.rounding import (
    CROP_DIVISOR,
    clean_factor,
    format_factor,
    inner_width,
    round_repeats,
    round_width,
)


@dataclass(frozen=True)
class Factor:
    """One of the six X3D factors: the ArchSpec field that holds it and what it means.

    ``kind`` says how it moves: ``count`` factors are integers (frames,
    stride), ``pixels`` is the crop (a multiple of the grid's crop step), and
    ``multiplier`` factors scale a basis constant (SlowFast's *_FACTOR keys).
    """

    name: str
    symbol: str  # the paper's (X3D §3)
    slowfast: str  # the SlowFast config key that holds it
    kind: str  # count | pixels | multiplier
    description: str


FACTOR_TABLE: Registry[Factor] = Registry("factor")
for _factor in (
    Factor("frames", "γt", "DATA.NUM_FRAMES", "count", "frames per clip"),
    Factor("stride", "γτ", "DATA.SAMPLING_RATE", "count", "source frames between sampled frames (at 30 fps)"),
    Factor("crop", "γs", "DATA.TRAIN_CROP_SIZE", "pixels", "train crop side in pixels (γs = crop / 112)"),
    Factor("width", "γw", "X3D.WIDTH_FACTOR", "multiplier", "channel width of every layer (γw = width / 2)"),
    Factor("bottleneck", "γb", "X3D.BOTTLENECK_FACTOR", "multiplier", "inner (bottleneck) width of each block"),
    Factor("depth", "γd", "X3D.DEPTH_FACTOR", "multiplier", "blocks per stage (ceil(γd x [1, 2, 5, 3]))"),
):
    FACTOR_TABLE.register(_factor.name, _factor)

# The six factors, in paper order, and the three that multiply a basis constant.
FACTORS: tuple[str, ...] = FACTOR_TABLE.names()
MULTIPLIERS: tuple[str, ...] = tuple(n for n, f in FACTOR_TABLE.items() if f.kind == "multiplier")
CONSTANTS: tuple[str, ...] = (
    "num_classes",
    "dim_c1",
    "dim_c5",
    "base_blocks",
    "se_ratio",
    "stem_kernel_t",
)

MIN_CROP = 32  # the network strides 32x spatially; smaller crops are meaningless

# Hard ceilings no real X3D needs to cross (X3D-XL: 16 frames x stride 5 at 356 px, width 2.0,
# bottleneck 2.25, depth 5.0 in SlowFast's units). Past them a typo (--depth 1000) would build
# a network of gigabytes before anything could say no.
CEILINGS: dict[str, float] = {
    "frames": 256, "stride": 256, "crop": 1024, "width": 16.0, "bottleneck": 16.0, "depth": 16.0,
    "num_classes": 100_000, "dim_c1": 1024, "dim_c5": 16384, "stem_kernel_t": 15,
}


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"ArchSpec.{name}: must be an integer >= {minimum}, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise SpecError(f"ArchSpec.{name}: must be an integer, got {value!r}")
        value = int(value)
    if value < minimum:
        raise SpecError(f"ArchSpec.{name}: must be an integer >= {minimum}, got {value}")
    return int(value)


def _check_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"ArchSpec.{name}: must be a positive number, got {value!r}")
    if not value > 0 or value != value or value == float("inf"):
        raise SpecError(f"ArchSpec.{name}: must be a positive number, got {value}")
    return clean_factor(value)


@dataclass(frozen=True)
class ArchSpec:
    """The six X3D factors and the constants of the basis they multiply.

    Every factor is in SlowFast's units: frames (the paper's γt) and stride
    (γτ, SlowFast's SAMPLING_RATE at 30 fps) shape the clip; crop is the train
    crop in pixels (γs = crop / 112); width, bottleneck and depth are SlowFast's
    X3D WIDTH/BOTTLENECK/DEPTH_FACTOR (γw = width / 2, γb, γd). ``expand.units``
    converts to and from the paper's units.
    """

    frames: int
    stride: int
    crop: int
    width: float = 1.0
    bottleneck: float = 1.0
    depth: float = 1.0
    num_classes: int = 400
    dim_c1: int = 12
    dim_c5: int = 2048
    base_blocks: tuple[int, ...] = (1, 2, 5, 3)
    se_ratio: float = 0.0625
    stem_kernel_t: int = 5

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "frames", _check_int("frames", self.frames, 1))
        set_(self, "stride", _check_int("stride", self.stride, 1))
        crop = _check_int("crop", self.crop, MIN_CROP)
        if crop % CROP_DIVISOR:
            raise SpecError(
                f"ArchSpec.crop: must be a multiple of {CROP_DIVISOR}, got {crop}"
            )
        set_(self, "crop", crop)
        for name in MULTIPLIERS:
            set_(self, name, _check_positive(name, getattr(self, name)))
        set_(self, "num_classes", _check_int("num_classes", self.num_classes, 1))
        set_(self, "dim_c1", _check_int("dim_c1", self.dim_c1, 1))
        set_(self, "dim_c5", _check_int("dim_c5", self.dim_c5, 1))
        set_(self, "stem_kernel_t", _check_int("stem_kernel_t", self.stem_kernel_t, 1))
        blocks = self.base_blocks
        if isinstance(blocks, (str, bytes)) or not hasattr(blocks, "__iter__"):
            raise SpecError(f"ArchSpec.base_blocks: must be a list of 4 integers, got {blocks!r}")
        blocks = tuple(_check_int("base_blocks", b, 1) for b in blocks)
        if len(blocks) != 4:
            raise SpecError(f"ArchSpec.base_blocks: must have 4 stages, got {len(blocks)}")
        set_(self, "base_blocks", blocks)
        ratio = self.se_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
            raise SpecError(f"ArchSpec.se_ratio: must be in [0, 1), got {ratio!r}")
        set_(self, "se_ratio", float(ratio))
        for name, ceiling in CEILINGS.items():
            if getattr(self, name) > ceiling:
                raise SpecError(f"ArchSpec.{name}: {getattr(self, name)} is over the ceiling {ceiling:g} "
                                "(no X3D model needs more; see expand.spec.CEILINGS)")
        if max(blocks) > 64:
            raise SpecError(f"ArchSpec.base_blocks: at most 64 blocks per stage, got {max(blocks)}")
        if self.stem_width < 1 or min(self.stage_inner_widths) < 1:
            raise SpecError(
                f"ArchSpec.width/bottleneck: {self.width}/{self.bottleneck} leave a layer "
                "with no channels"
            )

    # ----- derived architecture (SlowFast's rounding, see expand.rounding) -----
    @property
    def base_stage_widths(self) -> tuple[int, ...]:
        """res2..res5 widths before the width factor: DIM_C1 then x2 with divisor 8."""
        widths = [self.dim_c1]
        for _ in range(3):
            widths.append(round_width(widths[-1], 2.0, divisor=8))
        return tuple(widths)

    @property
    def stem_width(self) -> int:
        return round_width(self.dim_c1, self.width)

    @property
    def stage_widths(self) -> tuple[int, ...]:
        return tuple(round_width(w, self.width) for w in self.base_stage_widths)

    @property
    def stage_inner_widths(self) -> tuple[int, ...]:
        return tuple(inner_width(w, self.bottleneck) for w in self.stage_widths)

    @property
    def stage_blocks(self) -> tuple[int, ...]:
        return tuple(round_repeats(b, self.depth) for b in self.base_blocks)

    @property
    def head_inner_width(self) -> int:
        return self.stage_inner_widths[-1]

    @property
    def duration(self) -> int:
        """Clip span in source frames at 30 fps: frames x stride."""
        return self.frames * self.stride

    @property
    def name(self) -> str:
        """mmaction2-style readable name, e.g. ``x3d_16x5_224_w2.0_b2.25_d2.2``."""
        return (
            f"x3d_{self.frames}x{self.stride}_{self.crop}"
            f"_w{format_factor(self.width)}_b{format_factor(self.bottleneck)}"
            f"_d{format_factor(self.depth)}"
        )

    # ----- conversion -----
    def factors(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FACTORS}

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["base_blocks"] = list(self.base_blocks)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ArchSpec":
        if not isinstance(data, Mapping):
            raise SpecError(f"ArchSpec: expected a mapping of factors, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"ArchSpec: unknown field(s) {', '.join(unknown)}")
        missing = [n for n in ("frames", "stride", "crop") if n not in data]
        if missing:
            raise SpecError(f"ArchSpec: missing field(s) {', '.join(missing)}")
        kwargs = dict(data)
        if "base_blocks" in kwargs and isinstance(kwargs["base_blocks"], list):
            kwargs["base_blocks"] = tuple(kwargs["base_blocks"])
        return cls(**kwargs)

    def replace(self, **changes: Any) -> "ArchSpec":
        return dataclasses.replace(self, **changes)

    def key(self) -> str:
        """A stable string key for caches: every field, in order."""
        d = self.to_dict()
        return "|".join(f"{k}={d[k]}" for k in sorted(d))


def constants_of(spec: ArchSpec) -> dict[str, Any]:
    """The basis constants of a spec (everything but the six factors)."""
    d = spec.to_dict()
    return {k: d[k] for k in CONSTANTS}


__all__ = ["ArchSpec", "Factor", "FACTOR_TABLE", "FACTORS", "MULTIPLIERS", "CONSTANTS", "CEILINGS", "MIN_CROP",
           "constants_of"]
