import itertools
import threading
import time

import pytest

from expand.data.prefetch import Prefetcher


def test_items_arrive_in_order_and_complete():
    with Prefetcher(range(50), depth=3) as items:
        assert list(items) == list(range(50))


def test_loading_runs_ahead_of_the_consumer():
    loaded = []

    def source():
        for i in range(5):
            loaded.append(i)
            yield i

    with Prefetcher(source(), depth=2) as items:
        it = iter(items)
        assert next(it) == 0
        deadline = time.time() + 60  # exits as soon as the thread has loaded 1 and 2
        while len(loaded) < 3 and time.time() < deadline:  # item 0 taken, 1 and 2 queued
            time.sleep(0.01)
        assert loaded == [0, 1, 2]


def test_an_error_in_the_source_reaches_the_consumer_at_its_place():
    def source():
        yield 1
        yield 2
        raise OSError("corrupt clip")

    got = []
    with pytest.raises(OSError, match="corrupt clip"):
        with Prefetcher(source(), depth=4) as items:
            for x in items:
                got.append(x)
    assert got == [1, 2]


def test_leaving_early_stops_the_thread_without_draining_an_endless_source():
    before = threading.active_count()
    with Prefetcher(itertools.count(), depth=2) as items:
        for x in items:
            if x == 3:
                break
    assert threading.active_count() == before


def test_depth_must_be_positive():
    with pytest.raises(ValueError):
        Prefetcher([], depth=0)
