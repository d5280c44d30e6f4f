"""What Tune prints while the pool's workers run: nothing the search does not say better.

The search prints one line per trial event (``progress.py``); Tune's own
printer and its worker tracebacks name Tune's workers (``_ray_worker_…``),
which mean nothing to a user.
"""

from __future__ import annotations

import logging
from typing import Any

from expand.errors import DeviceBroken
from expand.search.dispatcher import publish


def silent_progress_callback() -> Any:
    """Tune's per-trial progress printer, silenced: the search prints its own lines.

    With ``verbose=0`` Tune still adds a TrialProgressCallback unless one is
    given, and it prints "Trial _ray_worker_… completed. Last result:" for a
    worker restarted after a kill: a worker's name means nothing to a user.
    """
    cls = globals().get("_SilentProgress")
    if cls is None:
        from ray.tune.progress_reporter import TrialProgressCallback

        class _SilentProgress(TrialProgressCallback):
            def _print(self, msg: str) -> None:
                pass

        cls = publish(_SilentProgress, "_SilentProgress", globals())
    return cls()


class _OurKillsFilter(logging.Filter):
    """Drop Tune's traceback for a worker this pool ended on purpose.

    Tune logs ~30 lines of traceback for any dead worker. For one we killed at
    a trial's time limit (``ActorDiedError``), the search's own "TIMEOUT:
    stopped after N s" line says it all; for one that ended itself because a
    trial broke its GPU (``DeviceBroken``), the trial's "FAILED: CUDA error: ..."
    line does. Any other death (a crash, a lost node) keeps its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        killed = type(exc).__name__ == "ActorDiedError" and "killed by `ray.kill`" in str(exc)
        return not (killed or isinstance(exc, DeviceBroken))  # Ray's RayTaskError(DeviceBroken) is one


def quiet_our_kills() -> None:
    """Install the filter above on Tune's controller log (once per process)."""
    tune_log = logging.getLogger("ray.tune.execution.tune_controller")
    if not any(isinstance(f, _OurKillsFilter) for f in tune_log.filters):
        tune_log.addFilter(_OurKillsFilter())
