import json

import pytest

from expand.complexity import ComplexityCounter, count_complexity
from expand.spec import ArchSpec

X3D_M = ArchSpec(16, 5, 224, width=2.0, bottleneck=2.25, depth=2.2)


def test_x3d_m_gflops_match_the_reference_counter():
    c = count_complexity(X3D_M)
    # fvcore 0.1.5.post20221221 counts 4.896 G for pytorchvideo's X3D-M; SlowFast's
    # extra shortcut BN adds 24 x 16 x 56 x 56 x 2 = 2.41 M.
    assert c.gflops == pytest.approx(4.90, rel=0.005)
    assert c.gflops == pytest.approx(4.896243200 + 0.002408448, rel=1e-9)
    assert c.params == 3_794_322


def test_stage_costs_add_up_to_the_total():
    c = count_complexity(ArchSpec(4, 12, 160, width=2.0, bottleneck=2.25, depth=2.2))
    assert [s.stage for s in c.stages] == ["s1", "s2", "s3", "s4", "s5", "head"]
    assert sum(s.gflops for s in c.stages) == pytest.approx(c.gflops, rel=1e-9)
    assert sum(s.params for s in c.stages) == c.params
    assert [s.height for s in c.stages] == [80, 40, 20, 10, 5, 1]


def test_gflops_are_affine_in_frames():
    # no temporal striding anywhere: every layer before the pool scales with T,
    # the post-pool head (lin_5, projection, SE's fc) does not.
    f1, f2, f4 = (count_complexity(ArchSpec(t, 8, 64)).gflops for t in (1, 2, 4))
    assert f4 - f2 == pytest.approx(2 * (f2 - f1), rel=1e-9)
    assert f2 < 2 * f1


def test_cache_counts_each_spec_once_in_memory_and_on_disk(tmp_path):
    path = tmp_path / "c.json"
    spec = ArchSpec(2, 4, 64)
    first = ComplexityCounter(path=str(path))
    a = first.count(spec)
    b = first.count(spec)
    assert a == b and first.misses == 1 and first.hits == 1
    assert len(json.loads(path.read_text())) == 1
    second = ComplexityCounter(path=str(path))  # a new process reads the file
    assert second.count(spec) == a
    assert second.misses == 0


def test_corrupt_cache_file_is_ignored(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{not json")
    counter = ComplexityCounter(path=str(path))
    assert counter.gflops(ArchSpec(1, 8, 32)) > 0
    assert counter.misses == 1
    assert len(json.loads(path.read_text())) == 1  # rewritten whole


def test_two_threads_asking_for_one_spec_count_it_once():
    import threading

    from expand import complexity

    counter = ComplexityCounter(path=None)
    spec = ArchSpec(2, 6, 64)
    got = []
    with complexity._COUNTING:  # hold fvcore so both threads are asking at once
        threads = [threading.Thread(target=lambda: got.append(counter.count(spec))) for _ in range(2)]
        for t in threads:
            t.start()
        deadline = 50
        while not counter._counting and deadline:  # the first thread owns the count
            threading.Event().wait(0.02)
            deadline -= 1
        threading.Event().wait(0.2)  # the second finds it running
    for t in threads:
        t.join(60)
    assert len(got) == 2 and got[0] == got[1] == count_complexity(spec)
    assert counter.misses == 1 and counter.hits == 1


def test_a_failed_count_is_not_cached_and_reaches_the_caller(monkeypatch):
    from expand import complexity

    counter = ComplexityCounter(path=None)
    spec = ArchSpec(2, 6, 64)
    real = complexity.count_complexity
    monkeypatch.setattr(complexity, "count_complexity", lambda s: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        counter.count(spec)
    assert counter.misses == 0 and not counter._counting
    monkeypatch.setattr(complexity, "count_complexity", real)
    assert counter.count(spec) == real(spec) and counter.misses == 1


def test_one_count_serves_every_stride(tmp_path):
    from expand.complexity import ComplexityCounter, count_complexity

    counter = ComplexityCounter(path=None)
    a = counter.count(ArchSpec(2, 4, 64, num_classes=10))
    b = counter.count(ArchSpec(2, 7, 64, num_classes=10))
    assert counter.misses == 1 and a == b
    assert count_complexity(ArchSpec(2, 7, 64, num_classes=10)) == a  # and it is the true count


def test_a_model_too_big_to_trace_is_refused_before_fvcore():
    from expand.complexity import count_complexity, count_memory_estimate
    from expand.environ import count_memory_limit
    from expand.errors import SpecError

    big = ArchSpec(256, 1, 1024, width=2.0, bottleneck=2.25, depth=2.2)
    assert count_memory_estimate(big) > count_memory_limit()
    with pytest.raises(SpecError, match="would need"):
        count_complexity(big)


@pytest.mark.parametrize("depth", [1.0, 1.7, 3.1])  # stages of 1 to 16 blocks, odd and even past 3
def test_counting_three_blocks_a_stage_and_multiplying_is_the_count_of_every_block(depth):
    from expand.complexity import _count_complexity

    spec = ArchSpec(3, 6, 64, width=1.5, bottleneck=2.25, depth=depth, num_classes=10)
    assert _count_complexity(spec) == _count_complexity(spec, whole=True)


def test_x3d_xl_composed_from_three_blocks_a_stage_is_its_whole_count():
    from expand.complexity import _count_complexity
    from expand.presets import get_preset

    spec = get_preset("X3D-XL").spec
    assert spec.stage_blocks == (5, 10, 25, 15)
    assert _count_complexity(spec) == _count_complexity(spec, whole=True)
