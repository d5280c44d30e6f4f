"""Whether the Ray node a search's driver runs on is still there.

The node holds the trial queue (the pool's dispatcher actor) and, on one machine, the whole
cluster. When its raylet dies (the out-of-memory killer's favourite) Ray Tune does not stop: it
waits for cluster resources for ever, and the search would wait with it. The GCS marks such a
node dead after its health check (~15 s by default); asking it is one call (~1 ms).
"""

from __future__ import annotations

import time


def node_lost(node_id: str) -> str:
    """Why the Ray node ``node_id`` is gone, in words ('' while it lives)."""
    import ray

    try:
        nodes = ray.nodes()
    except Exception as exc:  # noqa: BLE001 - whatever the GCS client raises, the cluster does not answer
        return f"the Ray cluster does not answer ({type(exc).__name__}: {str(exc).strip()[:120]})"
    if any(n.get("NodeID") == node_id and n.get("Alive") for n in nodes):
        return ""
    return ("the Ray node this search runs on died (its raylet is gone: on one machine most often the "
            "out-of-memory killer, which 'dmesg' names)")


def wait_for_node_loss(node_id: str, patience_s: float = 30.0) -> str:
    """:func:`node_lost`, asked until it says why or ``patience_s`` pass ('' if the node lives on).

    For an actor on that node found dead: it dies with the raylet, before the GCS has
    marked the node dead.
    """
    deadline = time.monotonic() + patience_s
    while True:
        lost = node_lost(node_id)
        if lost or time.monotonic() >= deadline:
            return lost
        time.sleep(0.5)
