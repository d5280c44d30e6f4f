"""liveness: the driver's Ray node is alive, a node the GCS does not list (or lists dead) is lost."""

import pytest


@pytest.mark.ray
def test_the_drivers_node_lives_and_an_unknown_node_is_lost_with_the_usual_cause_named(ray_cluster):
    from expand.search.liveness import node_lost, wait_for_node_loss

    me = ray_cluster.get_runtime_context().get_node_id()
    assert node_lost(me) == "" and wait_for_node_loss(me, patience_s=0.0) == ""
    gone = "f" * len(me)
    assert node_lost(gone).startswith("the Ray node this search runs on died") and "dmesg" in node_lost(gone)
    assert wait_for_node_loss(gone, patience_s=30.0) == node_lost(gone)  # at once, not after its patience


def test_a_cluster_that_does_not_answer_is_lost_too(monkeypatch):
    import ray

    from expand.search.liveness import node_lost

    def unreachable():
        raise ConnectionError("failed to connect to GCS at 10.0.0.1:6379")

    monkeypatch.setattr(ray, "nodes", unreachable)
    assert node_lost("abc") == ("the Ray cluster does not answer (ConnectionError: failed to connect to GCS "
                                "at 10.0.0.1:6379)")
