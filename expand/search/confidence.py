"""How sure is a step's pick? A paired bootstrap over validation videos plus seed noise.

A step's candidates are evaluated on the same videos, so their accuracies are
strongly correlated: two networks that both get the easy videos right differ
only on the hard ones. Resampling *videos* (the same resample for every
candidate, and for the parent the gains are measured against) keeps that
pairing; treating each accuracy as an independent binomial would overstate the
noise of a difference several-fold. On top of the videos, training itself is
noisy: another seed gives another network. That part cannot be seen in one
trial, so each replicate adds Gaussian noise of the seed-to-seed std divided
by the square root of the seeds a candidate averages.

The seed-to-seed std is what the run has measured (candidates trained with
more than one seed, pooled over the run), shrunk towards a prior: the binomial
std of the validation set, which is about what a seed changes on a fixed test
set (Jordan 2023, "Calibrated chaos"). The prior counts as ``PRIOR_DOF``
degrees of freedom, so two lucky repeats cannot make every later step look
certain. A user who has measured it (``x3d-expand calibrate``) can set it.

The confidence of a candidate is the share of replicates in which the
selection rule picks it (ties shared), so the numbers of a step sum to 1.
"""

from __future__ import annotations

import base64
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from expand.search.select import Scored, select_tied

REPLICATES = 2000
PRIOR_DOF = 2.0
_CHUNK = 250


# ---------------------------------------------------------------- per-video results
def video_ids_digest(ids: Iterable[str]) -> str:
    """Names the validation videos and their order: results are paired only on the same list."""
    h = hashlib.sha1()
    for i in ids:
        h.update(i.encode("utf-8", "surrogateescape") + b"\n")
    return h.hexdigest()[:16]


def encode_per_video(correct1: Sequence[bool], correct5: Sequence[bool] | None, videos: str) -> dict[str, Any]:
    """Which videos a trial got right, as bits (1 kB per 8,000 videos), for ``TrialResult.per_video``."""
    def pack(bits: Sequence[bool]) -> str:
        return base64.b64encode(np.packbits(np.asarray(bits, dtype=bool)).tobytes()).decode("ascii")

    out = {"n": int(len(correct1)), "videos": videos, "top1": pack(correct1)}
    if correct5 is not None:
        out["top5"] = pack(correct5)
    return out


def decode_per_video(per_video: dict[str, Any], key: str = "top1") -> Optional[np.ndarray]:
    """The bool vector of ``encode_per_video``; None when the trial reported none."""
    if not per_video or key not in per_video:
        return None
    n = int(per_video["n"])
    bits = np.unpackbits(np.frombuffer(base64.b64decode(per_video[key]), dtype=np.uint8))
    if len(bits) < n:
        raise ValueError(f"per_video.{key}: {len(bits)} bits for {n} videos")
    return bits[:n].astype(bool)


# ---------------------------------------------------------------- evidence
@dataclass
class Evidence:
    """What is known of one candidate: a top-1 per trained seed, and which videos each seed got right."""

    axis: str
    gflops: float
    top1s: list[float]
    correct: Optional[np.ndarray] = None  # seeds x videos (bool); None: no per-video results
    videos: str = ""

    @property
    def top1(self) -> float:
        return float(np.mean(self.top1s)) if self.top1s else math.nan

    @property
    def seeds(self) -> int:
        return len(self.top1s)

    @classmethod
    def from_results(cls, axis: str, gflops: float, results: Sequence[Any]) -> "Evidence":
        """From a candidate's ``ok`` TrialResults (one per seed)."""
        top1s = [float(r.top1) for r in results]
        rows = [decode_per_video(getattr(r, "per_video", None) or {}) for r in results]
        digests = {(getattr(r, "per_video", None) or {}).get("videos", "") for r in results}
        if rows and all(x is not None for x in rows) and len({len(x) for x in rows}) == 1 and len(digests) == 1:
            return cls(axis, gflops, top1s, np.stack(rows), digests.pop())
        return cls(axis, gflops, top1s)


@dataclass
class StepConfidence:
    """Per candidate: P(the rule picks it) and the std of its accuracy; how they were estimated."""

    confidence: list[float]
    se: list[float]
    seed_std: float
    seed_std_source: str
    method: str
    videos: int = 0
    replicates: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- seed noise
def seed_spread(groups: Iterable[Sequence[float]]) -> tuple[float, float]:
    """Pooled within-candidate sum of squares and its degrees of freedom, over candidates with >= 2 seeds."""
    ss, dof = 0.0, 0.0
    for g in groups:
        if len(g) >= 2:
            m = sum(g) / len(g)
            ss += sum((x - m) ** 2 for x in g)
            dof += len(g) - 1
    return ss, dof


def choose_seed_std(configured: Optional[float], measured: tuple[float, float],
                    cands: Sequence[Evidence]) -> tuple[float, str]:
    """The seed-to-seed std a step's confidence assumes, and a line saying where it came from."""
    if configured is not None:
        return float(configured), "configured (search.confirm.seed_std)"
    ss, dof = measured
    n = _videos(cands)
    if n:
        p = float(np.clip(np.mean([c.top1 for c in cands]), 0.0, 1.0))
        prior = p * (1 - p) / n
        std = math.sqrt((PRIOR_DOF * prior + ss) / (PRIOR_DOF + dof))
        if dof:
            return std, (f"{dof:g} dof measured in this run, pooled with a binomial prior of "
                         f"{math.sqrt(prior):.3f} ({PRIOR_DOF:g} dof)")
        return std, f"binomial prior: sqrt(p(1-p)/{n}) (no repeated seeds yet)"
    if dof >= 2:
        return math.sqrt(ss / dof), f"{dof:g} dof measured in this run"
    return math.nan, "unknown: no per-video results and no repeated seeds"


def _videos(cands: Sequence[Evidence]) -> int:
    """Videos every candidate was evaluated on (0 when they were not the same list)."""
    if not cands or any(c.correct is None for c in cands):
        return 0
    if len({c.videos for c in cands}) != 1 or len({c.correct.shape[1] for c in cands}) != 1:
        return 0
    return int(cands[0].correct.shape[1])


# ---------------------------------------------------------------- the estimate
def step_confidence(rule: str, cands: Sequence[Evidence], parent: Optional[Evidence], parent_gflops: float,
                    seed_std: float, seed_std_source: str = "", seed: int = 0,
                    replicates: int = REPLICATES) -> StepConfidence:
    """P(each candidate is the rule's pick), from ``replicates`` paired resamples of videos and seeds."""
    k = len(cands)
    if k == 0:
        return StepConfidence([], [], seed_std, seed_std_source, "no candidates")
    rng = np.random.default_rng(seed)
    n = _videos(cands)
    with_parent = parent is not None and n and _videos([*cands, parent]) == n
    rows = [*cands, parent] if with_parent else list(cands)
    seeds = np.array([max(c.seeds, 1) for c in rows], dtype=np.float64)
    sigma = (seed_std if math.isfinite(seed_std) else 0.0) / np.sqrt(seeds)
    if parent is not None and not with_parent:
        parent_fixed = parent.top1
    else:
        parent_fixed = math.nan
    if n:
        means = np.stack([c.correct.mean(0) for c in rows]).astype(np.float32)  # rows x videos
        method = f"paired bootstrap over {n} videos + seed noise"
    elif not math.isfinite(seed_std):
        return StepConfidence([math.nan] * k, [math.nan] * k, seed_std, seed_std_source,
                              "unknown: no per-video results and no seed-to-seed std")
    else:
        method = "seed noise only (no per-video results)"
    wins = np.zeros(k)
    accs: list[np.ndarray] = []
    done = 0
    while done < replicates:
        b = min(_CHUNK, replicates - done)
        if n:
            w = rng.poisson(1.0, size=(b, n)).astype(np.float32)
            acc = (w @ means.T) / np.maximum(w.sum(1, keepdims=True), 1.0)
        else:
            acc = np.tile(np.array([c.top1 for c in rows]), (b, 1))
        acc = acc.astype(np.float64) + rng.standard_normal((b, len(rows))) * sigma
        for a in acc:
            p_top1 = a[k] if with_parent else parent_fixed
            scored = [Scored(c.axis, c.gflops, float(a[i])) for i, c in enumerate(cands)]
            tied = select_tied(rule, scored, p_top1, parent_gflops)
            wins[tied] += 1.0 / len(tied)
        accs.append(acc[:, :k])
        done += b
    se = np.concatenate(accs).std(0)
    return StepConfidence([float(x) for x in wins / replicates], [float(x) for x in se], seed_std,
                          seed_std_source, method, videos=n, replicates=replicates)
