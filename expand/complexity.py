"""GFLOPs and parameters of an ArchSpec, counted the way SlowFast reports them.

fvcore's flop counter counts one fused multiply-add as one flop. SlowFast's
``get_model_stats`` counts with the model in eval mode (BN counts differ in
train mode), batch 1, one view at the train crop; so do we. Counting traces the
network, which takes seconds for large specs, and a search asks for the same
specs over and over (every step re-counts its parent; contraction searches
between two steps), so counts are cached in memory and in a JSON file shared
between processes.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import warnings
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any

from expand.fileio import atomic_write
from expand.spec import ArchSpec

COUNTER = "fvcore flop_count (1 multiply-add = 1 flop), eval mode, batch 1, 1 view at the train crop"
COUNTER_SHORT = "fvcore MACs, 1 view @ train crop"

# Bump when the model builder changes in a way that changes counts.
MODEL_REVISION = 1


@dataclass(frozen=True)
class StageCost:
    stage: str
    frames: int
    height: int
    width: int
    channels: int
    blocks: int
    gflops: float
    params: int


@dataclass(frozen=True)
class Complexity:
    gflops: float
    params: int
    stages: tuple[StageCost, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"gflops": self.gflops, "params": self.params, "stages": [asdict(s) for s in self.stages]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Complexity":
        return cls(
            gflops=float(data["gflops"]),
            params=int(data["params"]),
            stages=tuple(StageCost(**s) for s in data.get("stages", [])),
        )


def _fvcore_version() -> str:
    try:
        from importlib.metadata import version

        return version("fvcore")
    except Exception:  # pragma: no cover - fvcore is a hard dependency
        return "unknown"


# One fvcore count at a time per process: counting swaps the global warning
# filters (catch_warnings is not thread-safe), and the search counts from two
# threads (the coordinator, and the lookahead counting the next step ahead).
_COUNTING = threading.Lock()


def count_memory_estimate(spec: ArchSpec) -> int:
    """Bytes a traced fp32 forward of ``spec`` at batch 1 needs, roughly (weights + live activations).

    The largest activations are the stem output and the first stage's inner
    tensors (T x crop/2 or crop/4 squared x channels); a trace keeps a few of
    them alive at once, so the estimate is four times the largest plus the
    input and the weights. Measured against the growth of peak RSS over a real
    count (2026-11-28, CPU): X3D-M 181 vs 223 MiB, L 353 vs 341, XL 656 vs 499,
    64 frames at 448 px 2.8 vs 2.0 GiB: good to a factor of 1.5 either way.
    """
    t, c = spec.frames, spec.crop
    acts = [spec.stem_width * (c // 2) ** 2]
    for i, (w, inner) in enumerate(zip(spec.stage_widths, spec.stage_inner_widths)):
        side = c // 2 ** (i + 2)
        acts += [inner * (2 * side) ** 2, w * side ** 2]  # a first block runs its 1x1 before striding
    largest = max(acts) * t * 4
    weights = 4 * sum(w * inner * 2 * b for w, inner, b in
                      zip(spec.stage_widths, spec.stage_inner_widths, spec.stage_blocks))
    return 4 * largest + 3 * t * c * c * 4 + weights


def count_complexity(spec: ArchSpec) -> Complexity:
    """Count GFLOPs and parameters of ``spec`` with fvcore (uncached)."""
    from expand.environ import count_memory_limit

    # fvcore traces a real forward pass; past the limit a count would swap or be killed
    need, limit = count_memory_estimate(spec), count_memory_limit()
    if need > limit:
        from expand.errors import SpecError

        raise SpecError(f"{spec.name}: counting its FLOPs would need ~{need / 2**30:.2g} GiB "
                        f"(limit {limit / 2**30:g} GiB, X3D_EXPAND_COUNT_MEMORY_GB); "
                        "lower frames or crop")
    with _COUNTING:
        return _count_complexity(spec)


# A stage's blocks after the first repeat two shapes: odd ones without SE, even ones
# with it (SlowFast puts SE on blocks 0, 2, 4, ...; block 0 alone strides and
# projects). Tracing blocks 0-2 and multiplying counts every block exactly, and
# a count's time no longer grows with depth: fvcore's tracing costs per op, and
# X3D-XL has 55 blocks (3.0 s a count traced whole, 1.5 s this way; benchmarks/flop_count.py).
TRACED_BLOCKS = 3


def _block_repeats(blocks: int) -> dict[int, int]:
    """How many blocks of the stage each traced block stands for."""
    if blocks <= TRACED_BLOCKS:
        return {i: 1 for i in range(blocks)}
    return {0: 1, 1: blocks // 2, 2: (blocks - 1) // 2}


def _count_complexity(spec: ArchSpec, whole: bool = False, channels_last: bool = True) -> Complexity:
    """``whole=True`` traces every block, ``channels_last=False`` a contiguous pass: the
    checks that the fast way counts the same (tests) and what it saves (benchmarks/flop_count.py)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis

    from expand.models.x3d import build_x3d, output_sizes

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    # fvcore reads shapes only, but it traces a real forward pass: channels-last runs
    # that pass 1.4x faster on CPU for large specs (X3D-L 2.7 s -> 1.8 s), same counts.
    layout = torch.channels_last_3d if channels_last else torch.contiguous_format
    model = build_x3d(spec, dropout=0.0).eval().to(memory_format=layout)
    repeats = {f"s{i + 2}": {j: 1 for j in range(n)} if whole else _block_repeats(n)
               for i, n in enumerate(spec.stage_blocks)}
    for (stage, traced), blocks in zip(repeats.items(), spec.stage_blocks):
        for j in range(len(traced), blocks):
            delattr(getattr(model, stage), f"res{j}")
    clip = torch.zeros(1, 3, spec.frames, spec.crop, spec.crop).contiguous(memory_format=layout)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(model, clip)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        by_module = analysis.by_module()
    flops, params = {}, {}
    for name in ("s1", "head"):
        flops[name] = by_module.get(name, 0)
        params[name] = sum(p.numel() for p in getattr(model, name).parameters())
    for stage, traced in repeats.items():
        kept = {j: getattr(getattr(model, stage), f"res{j}") for j in traced}
        flops[stage] = sum(by_module.get(f"{stage}.res{j}", 0) * k for j, k in traced.items())
        params[stage] = sum(sum(p.numel() for p in kept[j].parameters()) * k for j, k in traced.items())
    sizes = {name: (t, h, w) for name, t, h, w in output_sizes(spec)}
    channels = {"s1": spec.stem_width, "head": spec.num_classes}
    blocks = {"s1": 0, "head": 0}
    for i in range(4):
        channels[f"s{i + 2}"] = spec.stage_widths[i]
        blocks[f"s{i + 2}"] = spec.stage_blocks[i]
    stages = []
    for name in ("s1", "s2", "s3", "s4", "s5", "head"):
        t, h, w = sizes[name]
        stages.append(StageCost(stage=name, frames=t, height=h, width=w, channels=channels[name],
                                blocks=blocks[name], gflops=flops[name] / 1e9, params=params[name]))
    return Complexity(gflops=sum(flops.values()) / 1e9, params=sum(params.values()), stages=tuple(stages))


def default_cache_path() -> str:
    base = os.environ.get("X3D_EXPAND_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "x3d-expand"
    )
    return os.path.join(base, "complexity.json")


class ComplexityCounter:
    """Counts specs once: an in-memory dict in front of a JSON file on disk.

    The file is merged and replaced atomically under an advisory lock, so
    several processes (Ray workers, two searches) can share it. ``path=None``
    keeps the cache in memory only. ``misses`` counts real fvcore counts, for
    tests and for the search's progress line. Threads may share a counter: a
    spec asked for while another thread counts it waits for that count
    instead of counting it again.
    """

    def __init__(self, path: str | None = "default") -> None:
        self.path = default_cache_path() if path == "default" else path
        self._memory: dict[str, Complexity] = {}
        self._lock = threading.Lock()
        self._counting: dict[str, Future] = {}
        self._version = f"fvcore={_fvcore_version()};model={MODEL_REVISION}"
        self.misses = 0
        self.hits = 0
        if self.path:
            self._memory.update(self._read_disk())

    def _key(self, spec: ArchSpec) -> str:
        # The stride only decides which source frames a clip takes: the network never
        # sees it, so one count serves every stride (X-Fast and X-Temporal candidates
        # of a step, a contraction's bracket search over strides).
        return f"{self._version}|{spec.replace(stride=1).key()}"

    def _read_disk(self) -> dict[str, Complexity]:
        try:
            with open(self.path, encoding="utf-8") as fh:
                raw = json.load(fh)
        except (FileNotFoundError, json.JSONDecodeError, OSError):
            return {}
        out = {}
        for key, value in raw.items() if isinstance(raw, dict) else []:
            try:
                out[key] = Complexity.from_dict(value)
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def _write_disk(self, key: str, value: Complexity) -> None:
        directory = os.path.dirname(self.path) or "."
        try:
            os.makedirs(directory, exist_ok=True)
            with open(self.path + ".lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                merged = {k: v.to_dict() for k, v in self._read_disk().items()}
                merged[key] = value.to_dict()
                atomic_write(self.path, json.dumps(merged))
        except OSError as exc:  # a read-only cache must not stop a search
            logging.getLogger(__name__).warning("complexity cache not written: %s", exc)

    def count(self, spec: ArchSpec) -> Complexity:
        key = self._key(spec)
        with self._lock:
            cached = self._memory.get(key)
            running = self._counting.get(key) if cached is None else None
            owner = cached is None and running is None
            if owner:
                running = self._counting[key] = Future()
        assert running is not None or cached is not None
        if not owner:  # in memory, or being counted by another thread
            with self._lock:
                self.hits += 1
            return cached if cached is not None else running.result()
        try:
            value = count_complexity(spec)
        except BaseException as exc:
            with self._lock:
                self._counting.pop(key, None)
            running.set_exception(exc)
            raise
        with self._lock:
            self._memory[key] = value
            self._counting.pop(key, None)
            self.misses += 1
        running.set_result(value)
        if self.path:
            self._write_disk(key, value)
        return value

    def gflops(self, spec: ArchSpec) -> float:
        return self.count(spec).gflops

    def params(self, spec: ArchSpec) -> int:
        return self.count(spec).params
