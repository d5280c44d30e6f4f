"""Before the first trial: can every node of the Ray cluster run one?

A trial on a node that lacks the dataset, or runs another version of the
package, fails only when it lands there — one trial at a time, hours into a
search. So the runner first sends one small task to every alive node (pinned
to it, no CPU needed) that imports the package and the trial function and
reads the data paths as a trial would, and refuses to start (exit 2, nothing
trained) naming each node that cannot. A node may mount the dataset at
another path: ``X3D_EXPAND_DATA_ROOT`` in that node's environment says where
(the trainer reads it too).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from expand.errors import InputError

DATA_ROOT_ENV = "X3D_EXPAND_DATA_ROOT"


def check_address(address: Optional[str], timeout: float = 10.0) -> None:
    """Raise InputError (exit 2) unless a Ray cluster answers at ``address`` ('auto', HOST:PORT, ray://HOST:PORT).

    ``ray.init`` retries an address nothing listens on for minutes, and only
    after the run folder exists: a typo in ``--address`` must be one line, at
    once, with nothing written. A TCP connect to the cluster's port (the GCS,
    or the Ray client server) within ``timeout`` seconds is the check.
    """
    if not address:
        return
    if address.startswith("ray://"):
        host, _, port = address[len("ray://"):].partition(":")
        port = port or "10001"  # the Ray client server's default port
    else:
        from ray._private.services import canonicalize_bootstrap_address

        try:
            found = canonicalize_bootstrap_address(address)
        except ConnectionError:
            raise InputError(f"--address {address}: no Ray cluster is running on this machine (start one with "
                             "`ray start --head`, or give HOST:PORT)") from None
        except ValueError:
            found = None
        host, _, port = (found or "").rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--address {address}: expected 'auto', HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        # Ray turns 127.0.0.1 and localhost into this machine's address: say so, or the line names an
        # address the user never typed
        canonical = not address.startswith("ray://") and address not in (f"{host}:{port}", "auto")
        where = f"{host}:{port}" + (f" (Ray's form of {address})" if canonical else "")
        raise InputError(f"--address {address}: no Ray cluster answers at {where} "
                         f"({exc.strerror or type(exc).__name__})") from None


def node_data_root(root: str) -> str:
    """The dataset root on this node: ``X3D_EXPAND_DATA_ROOT`` when set, else the experiment's."""
    return os.environ.get(DATA_ROOT_ENV) or root


@dataclass(frozen=True)
class Requirements:
    """What a trial needs on its node: this package's version, the trial function, the data."""

    version: str
    function: str
    data_root: str = ""
    manifests: tuple[str, ...] = ()  # relative to the data root
    cache_dir: str = ""  # "" : no cache; relative paths are under the data root

    @classmethod
    def of(cls, exp: Any) -> "Requirements":
        import expand

        data = exp.data
        manifests: tuple[str, ...] = ()
        if data.root:
            manifests = tuple(getattr(data, s) for s in ("train", "val"))
        cache = "" if data.cache == "off" or not data.root else \
            ".x3d-frame-cache" if data.cache == "auto" else data.cache
        return cls(expand.__version__, exp.trial.function, data.root, manifests, cache)


@dataclass
class NodeReport:
    node_id: str
    address: str
    hostname: str = ""
    version: str = ""
    package: str = ""  # where expand was imported from on that node
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.hostname or self.address} (node {self.node_id[:8]}, {self.address})"


def probe(req: Requirements) -> dict[str, Any]:
    """Run on a node: what a trial there would find. Never raises: problems are listed."""
    out: dict[str, Any] = {"hostname": socket.gethostname(), "problems": [], "notes": []}
    try:
        import expand

        out["version"], out["package"] = expand.__version__, os.path.dirname(expand.__file__)
        if expand.__version__ != req.version:
            out["problems"].append(f"x3d-expand {expand.__version__} here, {req.version} on the coordinator")
    except Exception as exc:  # noqa: BLE001 - reported
        out["problems"].append(f"cannot import expand: {type(exc).__name__}: {exc}")
        return out
    try:
        from expand.search.trial import load_trial_function

        load_trial_function(req.function)
    except Exception as exc:  # noqa: BLE001 - reported
        out["problems"].append(f"trial.function {req.function}: {str(exc).splitlines()[0]}")
    if not req.data_root:
        return out
    root = node_data_root(req.data_root)
    if root != req.data_root:
        out["notes"].append(f"data at {root} ({DATA_ROOT_ENV})")
    if not os.path.isdir(root) or not os.access(root, os.R_OK | os.X_OK):
        out["problems"].append(f"data.root {root}: not a readable folder here")
        return out
    for manifest in req.manifests:
        path = os.path.join(root, manifest)
        if not os.access(path, os.R_OK):
            out["problems"].append(f"{path}: not readable here")
    if req.cache_dir:
        cache = os.path.join(root, req.cache_dir)
        if os.path.isdir(cache):
            if not os.access(cache, os.R_OK | os.X_OK):
                out["problems"].append(f"frame cache {cache}: not readable here")
        elif os.access(os.path.dirname(cache.rstrip(os.sep)) or ".", os.W_OK):
            out["notes"].append(f"no frame cache at {cache} yet")  # built before the first trial (node_cache.py)
        else:
            out["problems"].append(f"frame cache {cache}: missing, and its folder is not writable here")
    return out


def trial_nodes() -> list[dict]:
    """The alive nodes a trial can land on (with CPUs or GPUs: not a CPU-less head), as ``ray.nodes()`` lists them."""
    import ray

    return [n for n in ray.nodes() if n.get("Alive") and
            (n.get("Resources", {}).get("CPU", 0) > 0 or n.get("Resources", {}).get("GPU", 0) > 0)]


def on_each(nodes: list[dict], fn: Callable[..., Any], args_of: Callable[[dict], tuple],
            timeout: Optional[float] = None) -> dict[str, Any]:
    """``fn(*args_of(node))`` as one task pinned to each node (no CPU asked for, no retry): its result,
    or the exception that stopped it (a dead node, a timeout), by node id."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remote = ray.remote(num_cpus=0, max_retries=0)(fn)
    out: dict[str, Any] = {}
    refs = {}
    for n in nodes:
        try:  # a node id Ray refuses is that node's problem, not every node's
            refs[n["NodeID"]] = remote.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(*args_of(n))
        except Exception as exc:  # noqa: BLE001
            out[n["NodeID"]] = exc
    for node_id, ref in refs.items():
        try:
            out[node_id] = ray.get(ref, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - the caller reports it against the node
            out[node_id] = exc
    return out


def check_nodes(req: Requirements, timeout: float = 120.0) -> list[NodeReport]:
    """One probe per alive node that can run trials (has CPUs or GPUs)."""
    nodes = trial_nodes()
    got_by_node = on_each(nodes, probe, lambda n: (req,), timeout)
    reports = []
    for n in nodes:
        report = NodeReport(n["NodeID"], n.get("NodeManagerAddress", "?"))
        got = got_by_node[n["NodeID"]]
        if isinstance(got, Exception):  # the node itself is the problem
            report.problems.append(f"the check did not run: {type(got).__name__}: {str(got).splitlines()[0]}")
        else:
            report.hostname, report.version = got.get("hostname", ""), got.get("version", "")
            report.package = got.get("package", "")
            report.problems += got["problems"]
            report.notes += got["notes"]
        reports.append(report)
    return reports


def require_nodes(req: Requirements, timeout: float = 120.0) -> list[NodeReport]:
    """check_nodes, raising one InputError (exit 2) that names every node that cannot run trials."""
    reports = check_nodes(req, timeout)
    bad = [r for r in reports if r.problems]
    if bad:
        lines = "; ".join(f"{r.name}: {', '.join(r.problems)}" for r in bad)
        raise InputError(f"{len(bad)} of {len(reports)} Ray node(s) cannot run trials: {lines}")
    return reports


def summary(reports: list[NodeReport]) -> Optional[str]:
    """One line for the log: how many nodes were checked, and any notes."""
    if not reports:
        return None
    notes = "; ".join(f"{r.name}: {', '.join(r.notes)}" for r in reports if r.notes)
    return f"checked {len(reports)} Ray node(s): package, trial function and data readable" + \
        (f" ({notes})" if notes else "")


__all__ = ["DATA_ROOT_ENV", "check_address", "Requirements", "NodeReport", "node_data_root", "probe", "trial_nodes", "on_each",
           "check_nodes", "require_nodes", "summary"]
