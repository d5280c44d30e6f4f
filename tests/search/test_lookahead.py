import threading

import pytest

from expand.complexity import ComplexityCounter
from expand.config import load_experiment
from expand.search.axes import AxisExhausted, expand
from expand.search.lookahead import Lookahead
from tests.search.helpers import oracle_experiment


@pytest.fixture
def space(tmp_path):
    return load_experiment(oracle_experiment(tmp_path)).search_space


class GatedCounter(ComplexityCounter):
    """A real counter whose first count waits for ``gate``; remembers what it counted."""

    def __init__(self) -> None:
        super().__init__(path=None)
        self.gate, self.entered = threading.Event(), threading.Event()
        self.asked: list = []

    def count(self, spec):
        self.asked.append(spec)
        if len(self.asked) == 1:
            self.entered.set()
            assert self.gate.wait(30)
        return super().count(spec)


def expand_all(parent, space, counter):
    for axis in space.axes:
        try:
            expand(parent, axis, space, counter)
        except AxisExhausted:
            pass


def test_a_submitted_parent_is_expanded_along_every_axis(space):
    counter = ComplexityCounter(path=None)
    ahead = Lookahead(space, counter)
    try:
        ahead.submit([space.basis])
        assert ahead.drain(timeout=120)
        assert ahead.expanded == len(space.axes)
        counted = counter.misses
        assert counted > len(space.axes)  # brackets: several counts per axis
        expand_all(space.basis, space, counter)
        assert counter.misses == counted  # the coordinator would count nothing
    finally:
        ahead.close()


def test_cancel_drops_the_waiting_parents_after_the_count_in_progress(space):
    counter = GatedCounter()
    ahead = Lookahead(space, counter)
    try:
        other = space.basis.replace(crop=96)
        ahead.submit([space.basis, other])
        assert counter.entered.wait(30)
        ahead.cancel()
        counter.gate.set()
        assert ahead.drain(timeout=60)
        assert counter.asked == [space.basis]  # the count in progress finished, nothing after it
        assert counter.misses == 1 and ahead.expanded == 0
    finally:
        ahead.close()


def test_the_preferred_parent_is_expanded_first(space):
    counter = GatedCounter()
    ahead = Lookahead(space, counter)
    try:
        first, preferred = space.basis, space.basis.replace(crop=96)
        ahead.submit([first, preferred])
        assert counter.entered.wait(30)
        ahead.prefer(preferred)
        counter.gate.set()
        assert ahead.drain(timeout=180)
        assert counter.asked[1] == preferred  # expand() counts its parent first
        assert ahead.expanded == 2 * len(space.axes)  # the superseded unit was taken up again
    finally:
        ahead.close()
