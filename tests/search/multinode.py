"""Searches on a Ray cluster of several nodes on this machine (ray.cluster_utils.Cluster).

Run as a subprocess by tests/search/test_multinode.py (a process joins one Ray
cluster, and the test session has its own). The cluster: a head with no CPUs
(no trial lands there, as in experiments/cluster/) and three one-CPU worker
nodes, each with its own TMPDIR, so a trial's scratch files live in its
node's folder; node1 "mounts" the dataset elsewhere (X3D_EXPAND_DATA_ROOT
points at a folder that does not exist). In order:

1. a search whose experiment has a dataset: refused before any trial, naming node1; then, once
   node1's root exists, the same search builds every node's frame cache before its first trial,
   and ``data cache --address`` reports them;
2. a search of the oracle (no dataset) whose trials write weights and snapshot each "step"
   (the oracle's snapshot_steps): they spread over the nodes, and node2 is removed in the
   middle of step 1, while each node's trial waits after its first snapshot reached the
   head (the oracle's hold_file);
3. the node check again, with the package shipped by Ray (``resources.ship_package``);
4. a node added and lost while it runs a task of ``on_each`` (the pinned tasks that build the
   frame caches before the first trial): its entry is the error that stopped it, the other
   nodes' tasks return, and nothing hangs;
5. a search given no ``--address`` while this cluster runs: it starts its own, not joins this one.

Prints one JSON line (``RESULT {...}``) for the test to check.

    python multinode.py WORKDIR DATA_EXPERIMENT REMOVE_EXPERIMENT PLAIN_EXPERIMENT
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time


def _hold(folder: str, node_id: str) -> str:
    """A pinned task that says it started, then waits (at most 120 s) for the release file."""
    import socket

    open(os.path.join(folder, "started-" + node_id), "w").close()
    deadline = time.monotonic() + 120
    while not os.path.exists(os.path.join(folder, "release")) and time.monotonic() < deadline:
        time.sleep(0.05)
    return socket.gethostname()


def _lose_a_node_mid_task(cluster, workdir: str) -> dict:
    """Step 4: a new node is removed while its on_each task runs; what on_each returned for each node."""
    from expand.search.nodes import on_each, trial_nodes

    folder = os.path.join(workdir, "hold")
    os.makedirs(folder)
    node3 = cluster.add_node(num_cpus=1, env_vars={"PYTHONPATH": ""})
    cluster.wait_for_nodes()
    nodes = trial_nodes()
    got: dict = {}
    thread = threading.Thread(target=lambda: got.update(on_each(nodes, _hold, lambda n: (folder, n["NodeID"]))))
    thread.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len([f for f in os.listdir(folder) if f.startswith("started-")]) < len(nodes):
        time.sleep(0.05)
    started = sorted(f[len("started-"):] for f in os.listdir(folder) if f.startswith("started-"))
    cluster.remove_node(node3)
    open(os.path.join(folder, "release"), "w").close()
    thread.join(timeout=180)
    return {"hold_node": node3.node_id, "hold_started": started, "hold_finished": not thread.is_alive(),
            "hold_got": {k: (f"error {type(v).__name__}" if isinstance(v, Exception) else "ok") for k, v in got.items()}}


def _search_without_address(workdir: str, experiment: str) -> dict:
    """Step 5: with this cluster still running, a search given no --address (and no RAY_ADDRESS)
    starts a cluster of its own, as documented; Ray's default would join this one."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, "-m", "expand.cli", "search", experiment, "--out",
                           os.path.join(workdir, "run-own"), "--quiet"], capture_output=True, text=True,
                          timeout=300, env=env)
    return {"own_rc": proc.returncode, "own_stderr": proc.stderr[-2000:]}


def main(workdir: str, data_exp: str, remove_exp: str, plain_exp: str) -> None:
    from ray.cluster_utils import Cluster

    fast_health = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                   "health_check_failure_threshold": 2}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "_system_config": fast_health})
    nodes = []
    for i in range(3):
        tmp = os.path.join(workdir, f"node{i}-tmp")
        os.makedirs(tmp, exist_ok=True)
        env = {"TMPDIR": tmp}
        if i == 1:
            env["X3D_EXPAND_DATA_ROOT"] = os.path.join(workdir, "not-mounted-here")
        env["PYTHONPATH"] = ""  # each node imports its own install of expand (or the one Ray ships)
        nodes.append(cluster.add_node(num_cpus=1, env_vars=env))
    cluster.wait_for_nodes()

    import ray

    import expand
    from expand.errors import InputError

    report: dict = {"nodes": {n.node_id: f"node{i}" for i, n in enumerate(nodes)},
                    "head": cluster.head_node.node_id}
    try:
        try:
            expand.search(data_exp, out=os.path.join(workdir, "run-data"), address=cluster.address, quiet=True)
        except InputError as exc:
            report["data_error"] = str(exc)

        # node1's dataset "mounted" at its own root: the same search now passes the check, and before
        # its first trial builds the frame caches: node0 and node2 split the shared folder, node1 its own
        import contextlib
        import io
        import shutil

        shutil.copytree(os.path.join(workdir, "data"), os.path.join(workdir, "not-mounted-here"))
        said = io.StringIO()
        with contextlib.redirect_stdout(said):
            expand.search(data_exp, out=os.path.join(workdir, "run-data-2"), address=cluster.address)
        report["cache_lines"] = said.getvalue().splitlines()
        # and `data cache --address` on the same cluster finds every entry there, and says who shares what
        from expand.cli import main as cli

        said = io.StringIO()
        with contextlib.redirect_stdout(said):
            report["cache_rc"] = cli(["data", "cache", data_exp, "--address", cluster.address, "--json"])
        report["cache_json"] = json.loads(said.getvalue().strip().splitlines()[-1])

        out = os.path.join(workdir, "run-remove")
        errors: list = []

        def search() -> None:
            try:
                expand.search(remove_exp, out=out, address=cluster.address, quiet=True)
            except BaseException:  # noqa: BLE001 - reported to the test
                import traceback

                errors.append(traceback.format_exc()[-3000:])

        thread = threading.Thread(target=search)
        thread.start()
        trials = os.path.join(out, "trials.jsonl")
        import yaml

        with open(remove_exp) as fh:  # the oracle appends a line to this file as each trial starts
            options = yaml.safe_load(fh)["trial"]["options"]
        calls, hold = options["count_file"], options["hold_file"]  # trials of step 1 wait for the hold file
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # three of step 1's trials running: every node holds one
            started = open(calls).read().split()[::2] if os.path.isfile(calls) else []
            if len({t for t in started if t.startswith("s01-")}) >= 3:
                break
            time.sleep(0.05)
        while time.monotonic() < deadline:  # and each has mirrored its first snapshot to the head, and waits
            snapshots = sorted(t for t in os.listdir(os.path.join(out, "trials"))
                               if t.startswith("s01-") and os.path.isfile(os.path.join(out, "trials", t, "snapshot.pt")))
            if len(snapshots) >= 3:
                break
            time.sleep(0.05)
        report["snapshots_when_removed"] = snapshots
        cluster.remove_node(nodes[2])
        report["removed"] = nodes[2].node_id
        report["records_when_removed"] = open(trials).read().count("\n")
        open(hold, "w").close()  # the two nodes left carry on
        thread.join(timeout=300)
        report["remove_errors"] = errors
        report["remove_finished"] = not thread.is_alive()

        # resources.ship_package: the runtime_env RayRunner passes; the node check says where each
        # node imported expand from
        from expand.search import nodes as node_checks
        from expand.search.runners import _shipped_package

        ray.init(address=cluster.address, runtime_env=_shipped_package(), log_to_driver=False)
        reports = node_checks.check_nodes(node_checks.Requirements.of(expand.load_experiment(remove_exp)))
        report["shipped_package"] = {r.node_id: r.package for r in reports}
        report["shipped_problems"] = [p for r in reports for p in r.problems]
        report.update(_lose_a_node_mid_task(cluster, workdir))
        report.update(_search_without_address(workdir, plain_exp))
    finally:
        ray.shutdown()
        cluster.shutdown()
    print("RESULT " + json.dumps(report), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
