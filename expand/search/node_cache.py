"""Every trial machine's frame cache built before the first trial, each machine with all its CPUs.

Without this, a machine that has no cache builds it inside its first trial:
with one decoding process, on the clock of the trial's time limit, while its
GPU idles — and the six trials of a step that land on one eight-GPU node all
decode the same videos at once. So before the first trial (expand/api.py),
this machine's cache is built with every core (``build_here``, no Ray), or on
a Ray cluster one task per node decodes what that node's cache lacks, using
the node's CPUs (``build_on_nodes``; local or joined, one node or many). Nodes that share
one cache folder (a shared mount) split the videos between them instead of
each decoding them all: each node writes a marker file into its cache folder,
and the nodes whose markers see each other, at the same data root, share the
work (a node that only sees a stale marker of another is not paired with it).

The disk check of ``x3d-expand data cache`` holds on every node: each node
first builds a spread-out sample of its share (kept) and estimates the rest; a
folder whose free space cannot hold 1.1x its nodes' estimates is refused, by
name, and nothing is built there (other folders are built; nothing is lost).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from expand.data.cache import room_error
from expand.errors import DataError
from expand.search.nodes import node_data_root, on_each, trial_nodes

MARKER = ".x3d-node-"


@dataclass(frozen=True)
class CacheJob:
    """What a node needs to build an experiment's frame cache: its data settings and search space."""

    data: Any  # expand.config.DataConfig
    space: Any  # expand.config.SearchSpace
    source: str = ""  # the experiment file, for the 'data check' hint when its folder alone reads otherwise

    @classmethod
    def of(cls, exp: Any) -> Optional["CacheJob"]:
        """The experiment's job, or None when it has no cache (``data.cache: off``, no dataset)."""
        if exp.data.cache == "off" or not exp.data.root:
            return None
        return cls(exp.data, exp.search_space, exp.source or "")

    @property
    def splits(self) -> tuple[str, ...]:
        return ("train", "val", "minival") if self.data.minival else ("train", "val")

    def here(self) -> tuple[Any, list[str]]:
        """On a node: its FrameCache (the folder made if missing) and every video of the splits, in order."""
        from expand.data.dataset import open_cache
        from expand.data.manifest import split_items

        data = dataclasses.replace(self.data, root=node_data_root(self.data.root))
        if not os.path.isdir(data.root):  # never make a dataset root by making its cache folder
            raise DataError(f"data.root {data.root}: not a folder here")
        cache = open_cache(data, self.space)
        paths = [i.path for split in self.splits for i in split_items(data, split)]
        return cache, list(dict.fromkeys(paths))


@dataclass
class NodeCache:
    """What one node did: its cache folder, whom it shared it with, and what it built."""

    node_id: str
    hostname: str = ""
    cache_dir: str = ""
    root: str = ""
    shared_with: list[str] = field(default_factory=list)  # the other nodes building this folder
    share: int = 0  # videos this node was given (all of them, unless the folder is shared)
    todo: int = 0  # of those, not cached yet after the estimate's sample
    built: int = 0  # decoded now, the estimate's sample included
    skipped: int = 0  # unreadable videos (an error entry, as a trial would skip them)
    bytes: float = 0.0  # estimated bytes of this node's share still to build
    free_bytes: int = 0
    seconds: float = 0.0
    problem: str = ""  # why nothing (more) was built here

    @property
    def name(self) -> str:
        return f"{self.hostname or '?'} (node {self.node_id[:8]})"


# ------------------------------------------------------------------ tasks run on each node
def mark(job: CacheJob, node_id: str) -> dict[str, Any]:
    """Open this node's cache folder and leave a marker in it for the other nodes to see."""
    cache, _ = job.here()
    with open(os.path.join(cache.directory, MARKER + node_id), "w"):
        pass
    return {"hostname": socket.gethostname(), "cache_dir": cache.directory,
            "root": node_data_root(job.data.root)}


def seen(job: CacheJob) -> list[str]:
    """The node ids whose markers are in this node's cache folder."""
    cache, _ = job.here()
    return sorted(name[len(MARKER):] for name in os.listdir(cache.directory) if name.startswith(MARKER))


def unmark(job: CacheJob, node_id: str) -> None:
    """Remove this node's marker (found where ``mark`` put it; nothing is created on the way)."""
    from expand.data.cache import default_cache_dir

    root = node_data_root(job.data.root)
    directory = default_cache_dir(root) if job.data.cache == "auto" else job.data.cache
    try:
        os.unlink(os.path.join(directory, MARKER + node_id))
    except OSError:
        pass


def plan_share(job: CacheJob, index: int, count: int, workers: int) -> dict[str, Any]:
    """Build a sample of this node's share (the entries are kept) and estimate the rest, as ``data cache``."""
    from expand.data.cache import estimate

    start = time.perf_counter()
    cache, paths = job.here()
    share = paths[index::count]
    plan = estimate(cache, share, workers)
    return {"share": len(share), "sampled": plan.sampled, "todo": sum(not cache.cached(p) for p in share),
            "bytes": plan.bytes, "free_bytes": plan.free_bytes, "seconds": time.perf_counter() - start}


def build_share(job: CacheJob, index: int, count: int, workers: int, queue: Any = None,
                node_id: str = "") -> dict[str, Any]:
    """Decode this node's share of the videos that have no entry yet; progress goes to ``queue``
    (at most once a second: each put is a round trip to the queue's actor)."""
    cache, paths = job.here()
    share = paths[index::count]
    start = time.perf_counter()
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.perf_counter()
        if queue is None or (done < total and now - last[0] < 1.0):
            return
        last[0] = now
        try:
            queue.put_nowait((node_id, done, total))
        except Exception:  # noqa: BLE001 - progress is best effort; the build goes on
            pass

    todo = [p for p in share if not cache.cached(p)]
    errors = cache.build(share, workers=workers, on_done=report)
    return {"built": sum(p not in errors for p in todo), "skipped": len(errors),
            "seconds": time.perf_counter() - start}


# ------------------------------------------------------------------ the driver
def _groups(marks: dict[str, dict], seen_by: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each node's group: the nodes whose markers it sees and that see its own, at the same data root."""
    out = {}
    for node, ids in seen_by.items():
        out[node] = sorted(m for m in ids if m in seen_by and node in seen_by[m]
                           and marks[m]["root"] == marks[node]["root"])
        if node not in out[node]:  # cannot see its own marker: a folder that is not what it seems; alone
            out[node] = [node]
    return out


def _failed(exc: Exception) -> str:
    exc = _cause(exc)
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _cause(exc: Exception) -> Exception:
    """The error the node raised, not Ray's wrapper (whose text starts with a coloured ``ray::task()`` line)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, Exception) else exc


def build_on_nodes(job: CacheJob, workers: Optional[int] = None,
                   say: Callable[[str], None] = print, progress: bool = True) -> list[NodeCache]:
    """Build every trial node's cache (Ray must be initialised); one NodeCache per node.

    ``workers``: decoding processes per node (default: the node's CPUs in Ray).
    Raises DataError (exit 2) naming the folders whose disks cannot hold them,
    after the other folders are built.
    """
    nodes = trial_nodes()
    reports = {n["NodeID"]: NodeCache(n["NodeID"]) for n in nodes}
    per_node = {n["NodeID"]: max(1, int(workers or n.get("Resources", {}).get("CPU", 1) or 1)) for n in nodes}

    def alive() -> list[dict]:
        return [n for n in nodes if not reports[n["NodeID"]].problem]

    def note_failures(got: dict[str, Any], what: str) -> None:
        for node_id, value in got.items():
            if isinstance(value, Exception):
                reports[node_id].problem = f"{what}: {_failed(value)}"

    try:
        marks = on_each(nodes, mark, lambda n: (job, n["NodeID"]))
        note_failures(marks, "cannot open its cache folder")
        # a folder the node cannot make (a dataset on a read-only mount, with data.cache: auto) fails
        # each of its trials as it opens the data: refused as a full disk is, before any trial
        unusable = [f"{_cause(m)} (node {node_id[:8]})" for node_id, m in marks.items()
                    if isinstance(_cause(m), DataError)]
        for node_id, m in marks.items():
            if not isinstance(m, Exception):
                r = reports[node_id]
                r.hostname, r.cache_dir, r.root = m["hostname"], m["cache_dir"], m["root"]
        seen_by = on_each(alive(), seen, lambda n: (job,))
        note_failures(seen_by, "cannot list its cache folder")
        seen_ok = {k: v for k, v in seen_by.items() if not isinstance(v, Exception)}
        groups = _groups({k: v for k, v in marks.items() if k in seen_ok}, seen_ok)
        for node_id, members in groups.items():
            reports[node_id].shared_with = [m for m in members if m != node_id]

        def share_of(n: dict) -> tuple:
            members = groups[n["NodeID"]]
            return job, members.index(n["NodeID"]), len(members), per_node[n["NodeID"]]

        plans = on_each(alive(), plan_share, share_of)
        note_failures(plans, "cannot estimate its share")
        for node_id, p in plans.items():
            if not isinstance(p, Exception):
                r = reports[node_id]
                r.share, r.todo, r.bytes, r.free_bytes = p["share"], p["todo"], p["bytes"], p["free_bytes"]
                r.built, r.seconds = p["sampled"], p["seconds"]
        refused = _refuse_full_disks([reports[n["NodeID"]] for n in alive()], groups)
        _build(alive(), share_of, reports, progress)
        _say_built([reports[n["NodeID"]] for n in nodes], say)
    finally:
        on_each(nodes, unmark, lambda n: (job, n["NodeID"]), timeout=60)
    if refused or unusable:
        raise DataError("; ".join(unusable + refused))
    return [reports[n["NodeID"]] for n in nodes]


def _refuse_full_disks(reports: list[NodeCache], groups: dict[str, list[str]]) -> list[str]:
    """Mark every node of a folder whose disk cannot hold its nodes' estimates; one message per folder."""
    by_id = {r.node_id: r for r in reports}
    messages, done = [], set()
    for r in reports:
        members = [by_id[m] for m in groups[r.node_id] if m in by_id]
        key = tuple(sorted(m.node_id for m in members))
        if key in done:
            continue
        done.add(key)
        msg = room_error(f"{r.cache_dir} on {', '.join(m.name for m in members)}", sum(m.bytes for m in members),
                         min(m.free_bytes for m in members), sum(m.built for m in members))
        if msg:
            for m in members:
                m.problem = "its disk is too small: " + msg
            messages.append(msg)
    return messages


def _build(nodes: list[dict], share_of: Callable[[dict], tuple], reports: dict[str, NodeCache],
           progress: bool) -> None:
    """The build round, with one progress line for all nodes (each node's counts travel through a Ray queue)."""
    from ray.util.queue import Queue

    from expand.console import CountProgress

    total = sum(reports[n["NodeID"]].todo for n in nodes)
    if not nodes or total == 0:
        return
    queue = Queue(actor_options={"num_cpus": 0})
    done_by: dict[str, int] = {}
    shown = CountProgress(total, f"decoding into the frame caches of {len(nodes)} node(s)", enabled=progress)
    finished = threading.Event()

    def follow() -> None:
        while not finished.is_set():
            try:
                node_id, done, _ = queue.get(timeout=1.0)
            except Exception:  # noqa: BLE001 - Empty, or the queue went away at the end
                continue
            done_by[node_id] = done
            shown(min(total, sum(done_by.values())))

    watcher = threading.Thread(target=follow, name="x3d-expand-cache-progress", daemon=True)
    watcher.start()
    try:
        got = on_each(nodes, build_share, lambda n: (*share_of(n), queue, n["NodeID"]))
    finally:
        finished.set()
        watcher.join()
        try:
            import ray

            ray.kill(queue.actor)
        except Exception:  # noqa: BLE001
            pass
    for node_id, value in got.items():
        r = reports[node_id]
        if isinstance(value, Exception):
            r.problem = f"its build stopped: {_failed(value)} (its trials build what is missing)"
        else:
            r.built += value["built"]
            r.skipped = value["skipped"]
            r.seconds += value["seconds"]


def _say_built(reports: list[NodeCache], say: Callable[[str], None]) -> None:
    """A line per node, when any node decoded anything (a cache that was complete everywhere stays quiet)."""
    from expand.console import format_seconds

    if not any(r.built for r in reports):
        return
    for r in reports:
        if not r.problem:
            shared = f", shared with {len(r.shared_with)} other node(s)" if r.shared_with else ""
            say(f"{r.name}: {r.built} video(s) decoded, {r.skipped} unreadable, in {format_seconds(r.seconds)} "
                f"-> {r.cache_dir}{shared}")


def build_here(job: CacheJob, progress: bool = True) -> Optional[str]:
    """Without a Ray cluster: this machine's cache, with all its cores; a line when anything was decoded."""
    from expand.data.cache import estimate

    cache, paths = job.here()
    workers = max(1, os.cpu_count() or 1)
    start = time.perf_counter()
    plan = estimate(cache, paths, workers)
    full = room_error(cache.directory, plan.bytes, plan.free_bytes, plan.sampled)
    if full:
        raise DataError(full)
    todo = [p for p in paths if not cache.cached(p)]
    errors = cache.build(todo, workers=workers, progress=progress)
    built = plan.sampled + sum(p not in errors for p in todo)
    bad = sum(bool(cache.error(p)) for p in paths)  # a complete cache still says what its trials will skip
    if not built and not bad:
        return None
    from expand.console import format_seconds
    from expand.data.checks import check_target, unreadable_note

    line = (f"frame cache: {built} video(s) decoded in {format_seconds(time.perf_counter() - start)} on "
            f"{workers} core(s) -> {cache.directory}" if built else f"frame cache: complete at {cache.directory}")
    return line + (f"; {unreadable_note(str(bad), check_target(job.data, job.source))}" if bad else "")


def build_before_trials(job: CacheJob, on_ray: bool, say: Callable[[str], None] = print,
                        progress: bool = True) -> Optional[str]:
    """Every trial machine's cache built now: on each Ray node when Ray runs the trials (``on_ray``:
    the search's runner is Ray's), else here — even in a process that has Ray up for something else.

    Returns a line for the log, or None when every cache was complete already."""
    if on_ray:
        reports = build_on_nodes(job, say=say, progress=progress)
        from expand.data.checks import check_target

        return summary(reports, check_target(job.data, job.source)) if any(r.built or r.problem or r.skipped for r in reports) else None
    return build_here(job, progress)


def summary(reports: list[NodeCache], check: str = "") -> str:
    """One line for the log."""
    from expand.data.checks import unreadable_note

    folders = {r.cache_dir for r in reports if r.cache_dir}
    built = sum(r.built for r in reports)
    line = f"frame caches ready on {sum(not r.problem for r in reports)} of {len(reports)} node(s) " \
           f"({len(folders)} folder(s), {built} video(s) decoded now)"
    # the nodes sharing a folder split the list, so their counts add up; each folder holds it all
    skipped = max((sum(r.skipped for r in reports if r.cache_dir == f) for f in folders), default=0)
    bad = [f"{r.name}: {r.problem}" for r in reports if r.problem]
    return line + (f"; {unreadable_note(str(skipped), check)}" if skipped else "") + \
        (f"; {'; '.join(bad)}" if bad else "")


__all__ = ["CacheJob", "NodeCache", "build_on_nodes", "build_here", "build_before_trials", "summary", "mark", "seen", "unmark", "plan_share",
           "build_share", "MARKER"]
