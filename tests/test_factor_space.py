import math
import random

from expand.config import load_search_space
from expand.factor_space import FlopFloor, capped_ranges, factor_ranges, snap

CAP = 0.012


def test_capped_ranges_keep_each_factor_alone_under_the_cap(counter):
    space = load_search_space("tiny_cpu")
    full, capped = factor_ranges(space), capped_ranges(space, counter, CAP)
    lowered = 0
    for name in ("frames", "crop", "width", "bottleneck", "depth"):
        r = capped[name]
        if counter.gflops(space.basis.replace(**{name: full[name].high})) <= CAP:
            assert r == full[name]
            continue
        lowered += 1
        assert r.high < full[name].high
        assert counter.gflops(space.basis.replace(**{name: r.high})) <= CAP
        nxt = r.high + r.step
        nxt = int(nxt) if name in ("frames", "crop") else round(nxt, 2)
        assert counter.gflops(space.basis.replace(**{name: nxt})) > CAP
    assert lowered >= 2


def test_flop_floor_is_a_lower_bound(counter):
    space = load_search_space("tiny_cpu")
    ranges = factor_ranges(space)
    floor = FlopFloor(space, counter, ranges, points=5)
    rng = random.Random(1)
    ratios = []
    for _ in range(12):
        f = {n: math.exp(rng.uniform(math.log(r.low), math.log(r.high))) for n, r in ranges.items()}
        spec = snap(space, f)
        ratios.append(floor.gflops(spec) / counter.gflops(spec))
    assert max(ratios) <= 1.0 and sorted(ratios)[len(ratios) // 2] > 0.1


def test_snap_rounds_to_the_grids_and_clips_to_what_expansion_reaches():
    space = load_search_space("tiny_cpu")
    r = factor_ranges(space)
    assert (r["frames"].low, r["stride"].high, r["crop"].low) == (1, 8, 64)  # from the basis upward
    spec = snap(space, {"frames": 3.6, "stride": 0.2, "crop": 83.0, "width": 1.234, "bottleneck": 9.0,
                        "depth": 0.1})
    assert (spec.frames, spec.stride, spec.crop, spec.width, spec.bottleneck, spec.depth) == \
        (4, 1, 80, 1.23, 6.0, 1.0)
