"""Tell the researcher when a long run needs them: a command of theirs, run when a step is picked
and when the run finishes or stops.

A week-long search is left alone, and what its user wants to hear is when it ends, above all when
it ends early (a faulty GPU, a full disk, a lost node, ``x3d-expand stop``), so that the GPUs do
not sit idle until someone looks. ``X3D_EXPAND_NOTIFY`` holds a shell command (``curl`` to a chat
webhook, ``mail``, ``ntfy``), run by ``search``, ``resume``, ``baseline``, ``calibrate`` and
``contract --train`` on each event with, in its environment:

* ``X3D_EVENT``: ``step`` (a step picked its expansion), ``finished`` or ``stopped``;
* ``X3D_RUN``: the run folder;
* ``X3D_MESSAGE``: one line, the run's name and what progress.log says of the event.

Why a command and not a built-in service: labs already have one way to be told things, and
a line of shell reaches any of them. The command runs beside the run (a hook that hangs on the
network stalls no trial); the last one is waited for up to :data:`TIMEOUT_S` before the command
exits. A hook that fails or hangs is said once in progress.log, and the run goes on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from typing import Any, Callable, ContextManager, Optional

from expand.search.progress import ConsoleProgress

ENV = "X3D_EXPAND_NOTIFY"
TIMEOUT_S = 30.0


def notify_command() -> Optional[str]:
    """The user's hook (``X3D_EXPAND_NOTIFY``), or None when unset or blank."""
    return os.environ.get(ENV, "").strip() or None


class Notifier(ConsoleProgress):
    """A progress sink that sends the step and end lines to the user's command.

    It is a ConsoleProgress with its lines captured, not printed, so a notification says what
    the screen and progress.log say (ETAs included), in the same words.
    """

    def __init__(self, command: str, run_path: str, warn: Callable[[str], None]) -> None:
        super().__init__(stream=None, heartbeat_s=0)
        self.command, self.run_path, self.warn = command, os.path.abspath(run_path), warn
        self.name = os.path.basename(os.path.normpath(self.run_path))
        self._said = threading.local()  # the line of the event this thread is handling
        self._finished_line = ""
        self._sending: list[threading.Thread] = []
        self._warned = False
        self._trained = False

    def _print(self, text: str) -> None:
        self._said.line = text

    def phase(self, label: str) -> ContextManager[None]:
        return contextlib.nullcontext()  # phases are not events: nothing to send

    def _last_line(self) -> str:
        return getattr(self._said, "line", "")

    def step_started(self, step: int, parent: Any, candidates: list[Any]) -> None:
        super().step_started(step, parent, candidates)
        self._trained = False

    def trial_finished(self, trial: Any, result: Any) -> None:
        super().trial_finished(trial, result)
        self._trained = True

    def step_finished(self, step: int, winner: Any, parent: Any) -> None:
        super().step_finished(step, winner, parent)
        if self._trained:  # a resume replays the steps it finished before from trials.jsonl: old news
            self.send("step", self._last_line())

    def search_finished(self, path: list[Any], reason: str) -> None:
        super().search_finished(path, reason)
        self._finished_line = self._last_line()

    def ended(self, what: str) -> None:
        """The command finished its work (the run may still have more: a resume grows it)."""
        self.send("finished", self._finished_line or f"{what} done in {self._elapsed()}")
        self.wait()

    def stopped(self, why: str) -> None:
        """The command ended without finishing; ``why`` is progress.log's last line."""
        self.send("stopped", why)
        self.wait()

    def send(self, event: str, text: str) -> None:
        env = {**os.environ, "X3D_EVENT": event, "X3D_RUN": self.run_path,
               "X3D_MESSAGE": f"x3d-expand {self.name}: {text.strip()}"}
        # one after another, in the order of the events: a step's message after the end's would
        # say the run is still going (a hook takes longer than an oracle's step)
        before = self._sending[-1] if self._sending else None
        thread = threading.Thread(target=self._run, args=(event, env, before), name="x3d-expand-notify",
                                  daemon=True)
        thread.start()
        self._sending.append(thread)

    def _run(self, event: str, env: dict, before: Optional[threading.Thread]) -> None:
        if before is not None:
            before.join()
        try:  # a session of its own: a hook stopped at the time limit takes its children with it
            hook = subprocess.Popen(self.command, shell=True, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            problem = f"could not start: {exc.strerror or exc}"
        else:
            try:
                _, err = hook.communicate(timeout=TIMEOUT_S)
                last = (err.decode(errors="replace").strip().splitlines() or [""])[-1][:200]
                problem = f"exited with {hook.returncode}: {last}" if hook.returncode else ""
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    os.killpg(hook.pid, signal.SIGKILL)
                hook.communicate()
                problem = f"did not finish in {TIMEOUT_S:g} s (stopped)"
        if problem and not self._warned:  # hooks run one at a time: no other reads it now
            self._warned = True
            self.warn(f"warning: {ENV} ({self.command!r}) on {event} {problem}; the run goes on "
                      "(said once a session)")

    def wait(self) -> None:
        """Let the hooks still running finish (each is stopped at TIMEOUT_S): the process exits next."""
        for thread in self._sending:
            thread.join(TIMEOUT_S + 5)
        self._sending = [t for t in self._sending if t.is_alive()]


__all__ = ["ENV", "Notifier", "TIMEOUT_S", "notify_command"]
