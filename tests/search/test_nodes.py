"""What a node check finds, run in this process (the multi-node tests run it on every node)."""

import os

import expand
from expand.search.nodes import DATA_ROOT_ENV, Requirements, node_data_root, probe

ORACLE = "expand.search.oracle:run_oracle"


def test_a_node_like_the_coordinator_has_no_problem(tmp_path):
    (tmp_path / "train.csv").write_text("a.mp4 0\n")
    (tmp_path / "val.csv").write_text("b.mp4 0\n")
    got = probe(Requirements(expand.__version__, ORACLE, str(tmp_path), ("train.csv", "val.csv"), ".x3d-frame-cache"))
    assert got["problems"] == [] and got["version"] == expand.__version__
    assert got["package"] == os.path.dirname(expand.__file__)
    assert got["notes"] == [f"no frame cache at {tmp_path / '.x3d-frame-cache'} yet"]  # built before the first trial


def test_each_problem_is_named(tmp_path, monkeypatch):
    (tmp_path / "train.csv").write_text("a.mp4 0\n")
    got = probe(Requirements("0.0.1", "nowhere:fn", str(tmp_path), ("train.csv", "val.csv")))
    problems = " | ".join(got["problems"])
    assert f"x3d-expand {expand.__version__} here, 0.0.1 on the coordinator" in problems
    assert "trial.function nowhere:fn" in problems
    assert f"{tmp_path / 'val.csv'}: not readable here" in problems and "train.csv" not in problems
    missing = probe(Requirements(expand.__version__, ORACLE, str(tmp_path / "gone"), ("train.csv",)))
    assert missing["problems"] == [f"data.root {tmp_path / 'gone'}: not a readable folder here"]


def test_a_node_that_mounts_the_data_elsewhere_says_so_and_is_checked_there(tmp_path, monkeypatch):
    elsewhere = tmp_path / "mnt"
    elsewhere.mkdir()
    (elsewhere / "train.csv").write_text("a.mp4 0\n")
    monkeypatch.setenv(DATA_ROOT_ENV, str(elsewhere))
    assert node_data_root("/data/k400") == str(elsewhere)
    got = probe(Requirements(expand.__version__, ORACLE, "/data/k400", ("train.csv",)))
    assert got["problems"] == [] and got["notes"] == [f"data at {elsewhere} ({DATA_ROOT_ENV})"]
    monkeypatch.delenv(DATA_ROOT_ENV)
    assert node_data_root("/data/k400") == "/data/k400"


def test_an_experiment_without_data_needs_only_the_package_and_function():
    req = Requirements.of(expand.load_experiment("oracle"))
    assert req.data_root == "" and req.manifests == () and req.cache_dir == ""
    assert probe(req)["problems"] == []


def _closed_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_address_where_nothing_listens_is_an_input_error_at_once():
    import socket
    import time

    import pytest

    from expand.errors import InputError
    from expand.search.nodes import check_address

    port = _closed_port()
    start = time.monotonic()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(InputError, match=f"--address {address}: no Ray cluster answers at .*:{port}") as info:
            check_address(address)
        # Ray may name this machine's address for 127.0.0.1: then the line says which the user typed
        shown = str(info.value).split(" answers at ")[1].split(" ")[0]
        assert shown == f"127.0.0.1:{port}" or f"(Ray's form of {address})" in str(info.value)
    assert time.monotonic() - start < 5  # ray.init would retry for minutes
    for bad in ("nonsense", "host:abc", "ray://host:x"):
        with pytest.raises(InputError, match="expected 'auto', HOST:PORT or ray://HOST:PORT"):
            check_address(bad)
    with socket.socket() as server:  # something answers: the check passes (the cluster's own handshake is Ray's)
        server.bind(("0.0.0.0", 0))  # Ray connects to this machine's IP for 127.0.0.1
        server.listen()
        check_address(f"127.0.0.1:{server.getsockname()[1]}")
        check_address(f"ray://127.0.0.1:{server.getsockname()[1]}")
    check_address(None)


def test_on_each_gives_each_node_its_result_or_the_error_that_stopped_it(ray_cluster):
    """A node id Ray refuses (here the nil id) or one of a node that is gone fails that node's
    entry only; the live node's task runs and returns."""
    from expand.search.nodes import on_each, trial_nodes

    live = trial_nodes()
    gone, refused = {"NodeID": "ab" * 28}, {"NodeID": "f" * 56}
    got = on_each(live + [gone, refused], os.path.join, lambda n: ("x", n["NodeID"][:4]))
    assert got[live[0]["NodeID"]] == os.path.join("x", live[0]["NodeID"][:4])
    assert isinstance(got[gone["NodeID"]], Exception) and isinstance(got[refused["NodeID"]], ValueError)
