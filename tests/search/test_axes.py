import math

import pytest

from expand.config import load_search_space
from expand.search.axes import AXES, AxisExhausted, contract, expand, spec_at
from expand.spec import ArchSpec

SPACES = ["tiny_cpu", "x3d_paper"]


@pytest.fixture(scope="module", params=SPACES)
def space(request):
    return load_search_space(request.param, num_classes=10)


@pytest.mark.parametrize("axis", ["fast", "temporal", "spatial", "width", "bottleneck", "depth"])
def test_each_axis_roughly_doubles_and_is_nearest_to_2x(space, axis, counter):
    e = expand(space.basis, axis, space, counter)
    assert 1.75 < e.ratio < 2.3, (axis, e.ratio)
    assert e.spec != space.basis
    changed = {k for k, v in e.spec.factors().items() if v != space.basis.factors()[k]}
    allowed = {"fast": {"frames", "stride"}, "temporal": {"frames", "stride"},
               "spatial": {"crop"}, "width": {"width"}, "bottleneck": {"bottleneck"},
               "depth": {"depth"}}[axis]
    assert changed <= allowed and changed
    # the neighbours on the grid are no closer to 2x in log-FLOPs
    for delta in (-1, 1):
        level = {"fast": e.spec.frames, "temporal": e.spec.frames,
                 "spatial": e.spec.crop // space.grid.crop}.get(axis)
        if level is None:
            level = round(getattr(e.spec, axis) / getattr(space.grid, axis))
        neighbour = spec_at(space.basis, axis, level + delta, space)
        if neighbour is None or neighbour == space.basis:
            continue
        r = counter.gflops(neighbour) / e.parent_gflops
        assert abs(math.log(r / 2)) >= abs(math.log(e.ratio / 2)) - 1e-12


def test_fast_keeps_duration_temporal_extends_it(counter):
    space = load_search_space("x3d_paper", num_classes=400)
    fast = expand(space.basis, "fast", space, counter).spec
    temporal = expand(space.basis, "temporal", space, counter).spec
    assert (fast.frames, fast.stride) == (2, 24)  # 1x48 -> 2x24: same 48-frame span
    assert fast.duration == space.basis.duration
    assert temporal.frames == 2 and fast.stride < temporal.stride < space.basis.stride
    assert temporal.duration > space.basis.duration
    # two more X-Fast steps reach X3D-XS's 4x12
    step2 = expand(fast, "fast", space, counter).spec
    assert (step2.frames, step2.stride) == (4, 12)


def test_depth_step_counts_blocks_like_slowfast(counter):
    space = load_search_space("x3d_paper", num_classes=400)
    e = expand(space.basis, "depth", space, counter)
    assert e.spec.stage_blocks == tuple(math.ceil(e.spec.depth * b - 1e-9) for b in (1, 2, 5, 3))


def test_at_least_mode_never_undershoots(counter):
    import dataclasses

    space = load_search_space("tiny_cpu", num_classes=10)
    space = dataclasses.replace(space, step=dataclasses.replace(space.step, mode="at_least"))
    for axis in space.axes:
        e = expand(space.basis, axis, space, counter)
        assert e.ratio >= 2.0
    assert expand(space.basis, "fast", space, counter).spec.frames == 3  # 2 frames is 1.97x


def test_fast_is_exhausted_at_the_source_frame_rate(counter):
    space = load_search_space("tiny_cpu", num_classes=10)
    at_rate = space.basis.replace(frames=8, stride=1)
    with pytest.raises(AxisExhausted, match="stride is at its lower bound"):
        expand(at_rate, "fast", space, counter)
    # temporal still grows the clip, at the same rate
    t = expand(at_rate, "temporal", space, counter).spec
    assert t.stride == 1 and t.frames == 16


def test_bounds_exhaust_an_axis_with_a_reason(counter):
    space = load_search_space("tiny_cpu", num_classes=10)
    near_top = space.basis.replace(crop=120)
    with pytest.raises(AxisExhausted, match="crop beyond its bound"):
        expand(near_top, "spatial", space, counter)
    at_top = space.basis.replace(frames=16, stride=1)
    with pytest.raises(AxisExhausted, match="upper bound"):
        expand(at_top, "temporal", space, counter)


def test_spec_at_rejects_out_of_bounds_levels():
    space = load_search_space("tiny_cpu", num_classes=10)
    assert spec_at(space.basis, "spatial", 17, space) is None  # 136 px > 128
    assert spec_at(space.basis, "spatial", 16, space).crop == 128
    assert spec_at(space.basis, "width", 401, space) is None
    assert spec_at(space.basis, "fast", 9, space) is None  # stride would drop below 1


@pytest.mark.parametrize("axis", ["width", "bottleneck", "depth", "spatial", "fast"])
def test_contraction_meets_a_target_between_parent_and_child(space, axis, counter):
    e = expand(space.basis, axis, space, counter)
    target = math.sqrt(e.parent_gflops * e.gflops)  # halfway in log-FLOPs
    c = contract(space.basis, e.spec, axis, target, space, counter)
    assert c.gflops <= target
    if axis in ("width", "bottleneck"):
        assert c.within_tolerance and not c.note
    if not c.within_tolerance:  # coarse grids say so, naming the value above
        assert "grid too coarse" in c.note and c.note.endswith(", over the budget")  # why not the next value
        above = counter.gflops(spec_at(space.basis, axis, _next_level(c.spec, axis, space), space))
        assert above > target
        # each side's distance from the budget, as the FLOP error column gives it
        assert f"{c.gflops:.4g} GFLOPs ({100 * (c.gflops / target - 1):+.1f}%)" in c.note
        assert f"gives {above:.4g} ({100 * (above / target - 1):+.1f}%), over the budget" in c.note


def _next_level(spec, axis, space):
    if axis == "fast":
        return spec.frames + 1
    if axis == "spatial":
        return spec.crop // space.grid.crop + 1
    return round(getattr(spec, axis) / getattr(space.grid, axis)) + 1


def test_contraction_edge_cases(counter):
    space = load_search_space("tiny_cpu", num_classes=10)
    e = expand(space.basis, "width", space, counter)
    whole = contract(space.basis, e.spec, "width", e.gflops * 1.5, space, counter)
    assert whole.spec == e.spec  # the child already fits
    below = contract(space.basis, e.spec, "width", e.parent_gflops * 0.5, space, counter)
    assert below.spec == space.basis and "parent already needs" in below.note


def test_unknown_axis_is_a_spec_error():
    from expand.errors import SpecError

    space = load_search_space("tiny_cpu", num_classes=10)
    with pytest.raises(SpecError, match="unknown axis 'colour'"):
        spec_at(space.basis, "colour", 2, space)


def test_spec_at_keeps_basis_constants():
    space = load_search_space("tiny_cpu", num_classes=10)
    s = spec_at(space.basis, "width", 150, space)
    assert s.dim_c5 == 512 and s.num_classes == 10 and s.width == 1.5
    assert isinstance(s, ArchSpec)


def test_temporal_always_lengthens_the_clip_and_never_lowers_the_rate():
    """Issue 15: at stride 2, stride x sqrt(1/2) rounded to 1 and X-Temporal became X-Fast."""
    space = load_search_space("x3d_paper", num_classes=400)
    for frames in range(1, 17):
        for stride in range(1, 65):
            parent = ArchSpec(frames, stride, 112, width=2.0)
            for level in range(frames + 1, 33):
                child = spec_at(parent, "temporal", level, space)
                assert child is not None
                assert child.duration > parent.duration, (parent, child)
                assert child.stride <= parent.stride, (parent, child)


def test_the_axis_table_is_the_papers_six_one_class_per_kind():
    from expand.search.axes import AXES, CropAxis, DurationAxis, FrameRateAxis, MultiplierAxis, axes_table

    table = {row["axis"]: row for row in axes_table()}
    assert [table[a]["paper"] for a in AXES] == ["X-Fast", "X-Temporal", "X-Spatial", "X-Width",
                                                 "X-Bottleneck", "X-Depth"]
    assert [table[a]["factor"] for a in AXES] == ["frames", "frames", "crop", "width", "bottleneck", "depth"]
    assert isinstance(AXES.get("fast"), FrameRateAxis) and isinstance(AXES.get("temporal"), DurationAxis)
    assert isinstance(AXES.get("spatial"), CropAxis)
    assert all(type(AXES.get(a)) is MultiplierAxis for a in ("width", "bottleneck", "depth"))


def test_an_axis_registered_in_the_table_is_searchable(tmp_path, counter):
    """A toy axis (depth on a coarser grid: whole blocks x 2) is one entry, and a search space can name it."""
    import yaml

    import expand
    from expand.search.axes import AXES, MultiplierAxis
    from tests.search.helpers import TINY, oracle_experiment

    class DoubleDepth(MultiplierAxis):
        def spec_at(self, parent, level, space):
            return super().spec_at(parent, level * 2, space)

        def level(self, spec, space):
            return super().level(spec, space) // 2

        def max_level(self, parent, space):
            return super().max_level(parent, space) // 2

    AXES.register("depth2", DoubleDepth("depth2", "X-Depth (coarse)", "depth", "depth in steps of 2 grid units"))
    try:
        space = yaml.safe_load(open(TINY))
        space["axes"] = ["fast", "spatial", "depth2"]
        (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
        exp = oracle_experiment(tmp_path, search_space=str(tmp_path / "space.yaml"), search={"max_steps": 1})
        run = expand.search(exp, out=str(tmp_path / "run"), quiet=True)
        step1 = run.steps[run.steps.step == 1]
        assert list(step1.axis) == ["fast", "spatial", "depth2"]
        deep = step1[step1.axis == "depth2"].iloc[0]
        assert deep.status == "ok" and deep.depth > 1.0 and deep.gflops > run.steps.gflops.iloc[0]
    finally:
        AXES.unregister("depth2")


class ShapedCounter:
    """FLOPs shaped like X3D's (a fixed stem and head, a body growing in every factor), and
    the specs asked for: cheap enough to check the step search against a scan of every level."""

    def __init__(self):
        self.asked = set()

    def gflops(self, spec):
        self.asked.add(spec.replace(stride=1))
        body = spec.width ** 2 * (0.3 + 0.2 * spec.bottleneck) * sum(spec.stage_blocks)
        return 0.01 * spec.frames * (spec.crop / 112) ** 2 * (1.5 + body)


def _levels(parent, axis, space):
    return [(lv, s) for lv in range(1, AXES.get(axis).max_level(parent, space) + 1)
            if (s := spec_at(parent, axis, lv, space)) is not None]


@pytest.mark.parametrize("axis", ["fast", "temporal", "spatial", "width", "bottleneck", "depth"])
def test_a_step_and_a_contraction_are_what_a_scan_of_every_level_finds(space, axis):
    """The search starts where a curve fit says the step lands; where it starts never changes what it finds."""
    counter = ShapedCounter()
    parent = space.basis
    for _ in range(3):  # three steps along the axis, each from the last
        try:
            e = expand(parent, axis, space, counter)
        except AxisExhausted:
            break
        goal = e.parent_gflops * space.step.flops_factor * (1 - space.step.tolerance)
        levels = _levels(parent, axis, space)
        first = next((i for i, (_, s) in enumerate(levels) if counter.gflops(s) >= goal), None)
        if first is None:  # no level reaches it: the bound, taken when nearer the step than the parent
            assert e.spec == levels[-1][1]
        else:  # the smallest level that reaches it, or the one below when nearer 2x
            assert e.spec in (levels[first][1], levels[first - 1][1])
        for frac in (0.3, 0.5, 0.9):  # contraction: the largest level at most the target
            target = e.parent_gflops * (e.gflops / e.parent_gflops) ** frac
            c = contract(parent, e.spec, axis, target, space, counter)
            fits = [s for _, s in _levels(parent, axis, space) if e.parent_gflops <= counter.gflops(s) <= target]
            assert counter.gflops(c.spec) == max(counter.gflops(s) for s in fits + [parent])
        parent = e.spec


@pytest.mark.parametrize("axis", ["width", "bottleneck"])
def test_a_step_along_an_axis_that_leaves_stem_and_head_alone_takes_few_counts(axis):
    """Galloping from a pure power-law guess took 7 and 17 counts here (2-3 s each at X3D-L's size)."""
    space = load_search_space("x3d_paper", num_classes=400)
    counter = ShapedCounter()
    expand(space.basis.replace(frames=16, crop=224), axis, space, counter)
    assert len(counter.asked) <= 5


def test_a_contraction_to_a_child_off_the_grid_takes_the_level_below_it():
    """A child between two grid levels (a hand-edited space): the level it floors to, as the bisection gave."""
    space = load_search_space("tiny_cpu", num_classes=10)
    counter = ShapedCounter()
    parent = space.basis.replace(depth=2.2)
    child = space.basis.replace(depth=2.35)  # level 23, over the target; level 23's own spec (2.3) is not
    target = (counter.gflops(space.basis.replace(depth=2.3)) + counter.gflops(child)) / 2
    assert counter.gflops(space.basis.replace(depth=2.3)) < target < counter.gflops(child)
    c = contract(parent, child, "depth", target, space, counter)
    assert c.spec.depth == 2.2 and c.gflops <= target
