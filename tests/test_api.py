"""Bad input, as a new user and a hostile tester would type it: one line, exit 2, nothing written."""

import os
import re
import time

import pytest
import yaml

from expand.cli import main
from tests.search.helpers import oracle_experiment


def _err(capsys):
    out, err = capsys.readouterr()
    return err


def _assert_one_line_exit_2(capsys, argv, needle):
    code = main(argv)
    err = _err(capsys)
    assert code == 2, (argv, err)
    assert needle in err, (argv, err)
    assert err.strip().count("\n") == 0, err


@pytest.mark.parametrize("search, needle", [
    ({"targets": [float("nan")]}, "finite"),
    ({"targets": [float("inf")]}, "finite"),
    ({"targets": [0.0001]}, "below the basis"),
    ({"targets": [50.0], "max_steps": 2}, "out of reach"),
    ({"max_gflops": 1e-9}, "below the basis"),
])
def test_bad_budgets_exit_2_before_the_run_folder_exists(tmp_path, capsys, search, needle):
    exp = oracle_experiment(tmp_path, search=search)
    _assert_one_line_exit_2(capsys, ["search", exp, "--out", str(tmp_path / "run")], needle)
    assert not (tmp_path / "run").exists()


def test_yaml_1_2_numbers_are_numbers(tmp_path):
    from expand.config import load_experiment

    path = oracle_experiment(tmp_path)
    text = open(path).read().replace("max_steps: 3", "max_steps: 3\n  max_gflops: 1e9")
    open(path, "w").write(text)
    assert load_experiment(path).search.max_gflops == 1e9


def test_baseline_cap_below_the_basis_is_refused_at_once(tmp_path, capsys):
    exp = oracle_experiment(tmp_path)
    start = time.monotonic()
    _assert_one_line_exit_2(capsys, ["baseline", exp, "--method", "random", "--trials", "3",
                                     "--max-gflops", "1e-9", "--out", str(tmp_path / "b")], "below the basis")
    assert time.monotonic() - start < 30  # it used to sample for a minute, then crash
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("target, needle", [
    ("inf", "finite"), ("nan", "finite"), ("1e-12", "impossible"), ("1000", "above the path"),
])
def test_contract_and_export_refuse_unreachable_targets(oracle_run, capsys, target, needle):
    before = sorted(os.listdir(oracle_run))
    contractions = (oracle_run / "contractions.json").read_text()
    _assert_one_line_exit_2(capsys, ["contract", str(oracle_run), "--target-gflops", target], needle)
    if target in ("inf", "nan", "1e-12"):
        _assert_one_line_exit_2(capsys, ["export", str(oracle_run), "--target-gflops", target],
                                "finite" if target in ("inf", "nan") else "impossible")
    assert sorted(os.listdir(oracle_run)) == before
    assert (oracle_run / "contractions.json").read_text() == contractions


@pytest.mark.parametrize("flag, value", [
    ("--depth", "1000"), ("--frames", "100000"), ("--crop", "100000"), ("--width", "1000"),
])
def test_factor_ceilings_refuse_absurd_models_at_once(capsys, flag, value):
    factors = {"--frames": "1", "--stride": "1", "--crop": "64", "--width": "1", "--bottleneck": "1",
               "--depth": "1", flag: value}
    start = time.monotonic()
    _assert_one_line_exit_2(capsys, ["flops", *[x for kv in factors.items() for x in kv]], "ceiling")
    assert time.monotonic() - start < 10


def test_a_model_too_big_to_count_is_refused_before_fvcore_runs(capsys):
    _assert_one_line_exit_2(capsys, ["flops", "--frames", "256", "--stride", "1", "--crop", "1024", "--width",
                                     "2", "--bottleneck", "2.25", "--depth", "2.2"], "would need")


def _video_experiment(tmp_path, train_csv: bytes, val_csv: bytes = b"a.mp4 0\n"):
    root = tmp_path / "data"
    root.mkdir()
    (root / "train.csv").write_bytes(train_csv)
    (root / "val.csv").write_bytes(val_csv)
    path = oracle_experiment(tmp_path, data={"root": str(root), "num_classes": 3})
    return path


@pytest.mark.parametrize("train, needle", [
    (b"", "no entries"), (b"caf\xe9.mp4 0\n", "not UTF-8"), (b"a.mp4 7\n", "outside [0, 3)"),
    (b"a.mp4 x\n", "not an integer"),
])
def test_bad_manifests_are_found_before_anything_is_written(tmp_path, capsys, train, needle):
    exp = _video_experiment(tmp_path, train)
    _assert_one_line_exit_2(capsys, ["search", exp, "--out", str(tmp_path / "run")], needle)
    assert not (tmp_path / "run").exists()


def test_a_non_utf8_experiment_is_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: caf\xe9\n")
    _assert_one_line_exit_2(capsys, ["search", str(bad)], "not UTF-8")


def test_a_bad_trial_function_is_exit_2_and_writes_nothing(tmp_path, capsys):
    exp = oracle_experiment(tmp_path)
    data = yaml.safe_load(open(exp))
    data["trial"]["function"] = "expand.search.oracle:no_such_function"
    open(exp, "w").write(yaml.safe_dump(data))
    _assert_one_line_exit_2(capsys, ["search", exp, "--out", str(tmp_path / "run")], "trial.function")
    assert not (tmp_path / "run").exists()


def test_out_pointing_at_a_file_is_exit_2(tmp_path, capsys):
    exp = oracle_experiment(tmp_path)
    (tmp_path / "file").write_text("precious")
    _assert_one_line_exit_2(capsys, ["search", exp, "--out", str(tmp_path / "file")], "not a folder")
    assert (tmp_path / "file").read_text() == "precious"


@pytest.mark.parametrize("command", ["search", "baseline", "calibrate"])
def test_out_at_a_folder_of_other_files_is_exit_2_and_writes_nothing_there(tmp_path, capsys, command):
    """`--out .` in an experiment folder wrote the run's config.yaml, state.json, trials/ and
    plots/ among the user's files (a config.yaml of theirs overwritten)."""
    exp = oracle_experiment(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    extra = {"baseline": ["--method", "random", "--trials", "2"]}.get(command, [])
    _assert_one_line_exit_2(capsys, [command, exp, *extra, "--out", str(mine)],
                            f"{mine}: not empty and not a run folder (1 entry, e.g. 'notes.txt'); give a new or "
                            "empty folder for the run")
    assert os.listdir(mine) == ["notes.txt"]  # not even the lock file
    (mine / "notes.txt").unlink()
    assert main([command, exp, *extra, "--out", str(mine), "--quiet", "--runner", "serial"]) == 0  # empty: fine
    assert (mine / "state.json").exists()


def test_data_synth_bad_targets_are_exit_2(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    _assert_one_line_exit_2(capsys, ["data", "synth", str(tmp_path / "file")], "not a folder")
    _assert_one_line_exit_2(capsys, ["data", "synth", str(tmp_path / "d"), "--size", "8"], "--size")


@pytest.mark.parametrize("search, needle", [
    ({"seed": -1}, "search.seed: must be 0-4294967295, got -1"),
    ({"seed": 2**32}, "search.seed: must be 0-4294967295"),  # numpy and Optuna's samplers refuse it mid-run
])
def test_a_seed_no_sampler_takes_is_exit_2_before_the_run_folder_exists(tmp_path, capsys, search, needle):
    exp = oracle_experiment(tmp_path, search=search)
    for argv in (["search", exp], ["baseline", exp, "--method", "tpe", "--trials", "2"]):
        _assert_one_line_exit_2(capsys, [*argv, "--out", str(tmp_path / "run")], needle)
        assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv", [["search", "EXP", "--seed", "-1"], ["baseline", "EXP", "--method", "random",
                                  "--trials", "2", "--seed", "4294967296"], ["data", "synth", "OUT", "--seed", "-3"]])
def test_a_seed_flag_out_of_range_is_a_usage_error(tmp_path, capsys, argv):
    exp = oracle_experiment(tmp_path)
    argv = [exp if a == "EXP" else str(tmp_path / "out") if a == "OUT" else a for a in argv]
    code = main(argv)
    err = _err(capsys)
    assert code == 2 and "--seed: must be 0-4294967295" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("overrides, needle", [
    ({"max_steps": 0}, "overrides: search.max_steps: must be 1-100, got 0"),
    ({"seed": -1}, "overrides: search.seed: must be 0-4294967295"),
    ({"targets": 0.5}, "overrides: search.targets: expected a list, got 0.5"),
    ({"max_stepz": 2}, "overrides: search.max_stepz: unknown key"),
    ({"runner": "gpu"}, "overrides: search.runner: unknown runner 'gpu'"),
])
def test_python_api_overrides_are_checked_like_the_files_keys_before_anything_is_written(tmp_path, overrides,
                                                                                         needle):
    import expand
    from expand.errors import ConfigError

    with pytest.raises(ConfigError, match=needle.replace(".", r"\.").replace("(", r"\(")):
        expand.search(oracle_experiment(tmp_path), out=str(tmp_path / "run"), quiet=True, **overrides)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, needle", [
    (("random", 0, None), "trials: must be an integer 1-10000, got 0"),
    (("random", "3", None), "trials: must be an integer 1-10000, got '3'"),
    (("random", 10**9, None), "trials: must be an integer 1-10000, got 1000000000"),
    (("grid", 3, None), "method 'grid': must be one of random, tpe, compound"),
    (("random", 3, float("nan")), "max_gflops: must be a positive finite number, got nan"),
    (("random", 3, -1.0), "max_gflops: must be a positive finite number, got -1.0"),
])
def test_python_api_baseline_arguments_are_checked_before_anything_is_written(tmp_path, args, needle):
    """The CLI's parser checks --method/--trials/--max-gflops; from Python a bad one ran a baseline
    of 0 trials, or died (LookupError, TypeError) after writing its run folder."""
    import expand
    from expand.errors import InputError

    method, trials, max_gflops = args
    with pytest.raises(InputError, match="^" + needle.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        expand.baseline(oracle_experiment(tmp_path), method, trials, max_gflops, out=str(tmp_path / "run"),
                        quiet=True)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("call, kwargs, needle", [
    ("search", {"out": 123}, "search: out must be a path (str or pathlib.Path), got int"),
    ("search", {"address": 6379}, "search: address must be a str (host:port or 'auto'), got int"),
    ("baseline", {"out": ["x"]}, "baseline: out must be a path (str or pathlib.Path), got list"),
])
def test_python_api_wrong_argument_types_are_input_errors_before_anything_is_written(tmp_path, call, kwargs,
                                                                                      needle):
    """out=123 raised "TypeError: expected str, bytes or os.PathLike object" from os.path, after
    the experiment was loaded."""
    import expand
    from expand.errors import InputError

    args = ("random", 2) if call == "baseline" else ()
    with pytest.raises(InputError, match="^" + re.escape(needle) + "$"):
        getattr(expand, call)(oracle_experiment(tmp_path), *args, quiet=True, **kwargs)
    with pytest.raises(InputError, match="^resume: path must be a path"):
        expand.resume(7)
    assert os.listdir(tmp_path) == ["exp.yaml"]


def test_python_api_takes_pathlib_paths(tmp_path):
    import expand

    run = expand.search(tmp_path / oracle_experiment(tmp_path), out=tmp_path / "run", quiet=True, max_steps=1)
    assert run.folder == str(tmp_path / "run") and len(run.trials) > 0 and run.status == "finished"
    assert expand.resume(tmp_path / "run", quiet=True).folder == str(tmp_path / "run")
    from expand.errors import ConfigError

    with pytest.raises(ConfigError, match="search.max_steps"):  # checked as the file's own keys are
        expand.resume(tmp_path / "run", quiet=True, max_steps="2")
    grown = expand.resume(tmp_path / "run", quiet=True, max_steps=2)  # and the search grows one step
    assert len(grown.path) == 3 and grown.status == "finished"


def test_python_api_overrides_replace_only_what_they_name(tmp_path):
    from expand.api import apply_overrides
    from expand.config import load_experiment

    exp = load_experiment(oracle_experiment(tmp_path, search={"max_steps": 3, "targets": [0.01], "seed": 5}))
    assert apply_overrides(exp, {"seed": None, "max_steps": None}) is exp  # flags not given
    again = apply_overrides(exp, {"max_steps": 2, "seed": 7})
    assert (again.search.max_steps, again.search.seed, again.search.targets) == (2, 7, [0.01])
    assert again.search_space == exp.search_space and again.search.confirm == exp.search.confirm
