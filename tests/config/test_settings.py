"""``--set KEY=VALUE``: any experiment key for one run, checked as the file's keys, kept for resume."""

import json
import pathlib

import pytest
import yaml

from expand.cli import main
from expand.config import load_experiment
from expand.config.settings import apply_settings, parse_setting, settings_from, shown_settings
from expand.errors import ConfigError, InputError
from tests.search.helpers import oracle_experiment


@pytest.mark.parametrize("text, expected", [
    ("schedule.epochs=2", ("schedule.epochs", 2)),
    ("schedule.base_lr=0.05", ("schedule.base_lr", 0.05)),
    ("search.targets=[0.5, 1]", ("search.targets", [0.5, 1])),
    ("search.max_gflops=null", ("search.max_gflops", None)),
    ("trial.amp=false", ("trial.amp", False)),
    ("name=k400:v2", ("name", "k400:v2")),  # a colon without a space is text, as in the file
    ("data.root=/data/k 400", ("data.root", "/data/k 400")),
    (" trial.device =cuda", ("trial.device", "cuda")),
])
def test_a_setting_is_a_dotted_key_and_a_yaml_value(text, expected):
    assert parse_setting(text) == expected


@pytest.mark.parametrize("text, message", [
    ("schedule.epochs", "expected KEY=VALUE with a dotted key, e.g. schedule.epochs=2, got 'schedule.epochs'"),
    ("=2", "expected KEY=VALUE"),
    ("schedule..epochs=2", "expected KEY=VALUE"),
    ("schedule.epochs=", "schedule.epochs=: no value (null for none)"),
    ("search.targets=[0.5", "search.targets=[0.5: not a YAML value (while parsing a flow sequence)"),
])
def test_a_bad_setting_says_what_was_expected(text, message):
    with pytest.raises(InputError, match="^" + message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        parse_setting(text)


def test_a_key_given_twice_is_refused_and_settings_read_back_as_typed():
    assert settings_from([("a.b", 1), ("c.d", "x")]) == {"a.b": 1, "c.d": "x"}
    with pytest.raises(InputError, match=r"^--set a\.b: given twice \(1 and 2\); give it once$"):
        settings_from([("a.b", 1), ("a.b", 2)])
    shown = shown_settings({"schedule.epochs": 2, "search.targets": [0.5, 1], "data.root": "/d", "name": "x"})
    assert shown == "--set schedule.epochs=2 --set 'search.targets=[0.5,1]' --set data.root=/d --set name=x"
    # what show prints is what a user types again in a shell: each reads back as the value it was
    import shlex

    settings = {"schedule.epochs": 2, "search.targets": [0.5], "name": " x", "data.root": "/d d", "trial.device": "2",
                "search.max_gflops": None, "trial.amp": "true", "schedule.epochs2": 1.5}
    words = shlex.split(shown_settings(settings))
    assert words[::2] == ["--set"] * len(settings)
    assert dict(parse_setting(w) for w in words[1::2]) == settings


def test_settings_change_only_what_they_name(tmp_path):
    exp = load_experiment(oracle_experiment(tmp_path))
    changed = apply_settings(exp, {"schedule.epochs": 3, "trial.options.chance": 0.5, "retries.failed": 0})
    assert (changed.schedule.epochs, changed.trial.options, changed.retries.failed) == (3.0, {"chance": 0.5}, 0)
    assert changed.source == exp.source and changed.search == exp.search and changed.search_space == exp.search_space
    assert (changed.schedule.batch_size, changed.trial.function) == (exp.schedule.batch_size, exp.trial.function)
    assert apply_settings(exp, {}) is exp


@pytest.mark.parametrize("settings, message", [
    ({"schedule.epochz": 2}, r"exp\.yaml with --set: schedule\.epochz: unknown key \(allowed: base_batch_size, "),
    ({"schedule.epochs": 0}, r"exp\.yaml with --set: schedule\.epochs: "),
    ({"schedule.epochs": "four"}, r"exp\.yaml with --set: schedule\.epochs: "),
    ({"sched.epochs": 2}, r"^--set sched\.epochs: sched: unknown key \(allowed: data, name, resources, retries, "
                          r"schedule, search, search_space, trial\)$"),
    ({"name.x": 1}, r"^--set name\.x: name is 'oracle-test', not a section with keys$"),
    ({"name": "../x"}, r"exp\.yaml with --set: name: must be 1-100 letters"),
    ({"resources.gpus_per_trial": 1, "trial.device": "cpu"},  # a rule across keys still holds
     r"exp\.yaml with --set: trial\.device: 'cpu' with resources\.gpus_per_trial > 0"),
    ({"data.root": "nowhere"}, r"exp\.yaml with --set: data\.root: .*nowhere does not exist"),
    ({"data": {"root": "nowhere"}}, r"exp\.yaml with --set: data\.root: .*nowhere does not exist"),  # a section
])
def test_a_bad_setting_is_the_files_one_line_error(tmp_path, settings, message):
    exp = load_experiment(oracle_experiment(tmp_path))
    with pytest.raises(ConfigError, match=message):
        apply_settings(exp, settings)


def test_a_relative_path_in_a_setting_is_from_the_current_folder(tmp_path, monkeypatch):
    exp = load_experiment(oracle_experiment(tmp_path))
    (tmp_path / "here" / "videos").mkdir(parents=True)
    (tmp_path / "here" / "videos" / "train.csv").write_text("a.mp4 0\n")
    (tmp_path / "here" / "videos" / "val.csv").write_text("a.mp4 0\n")
    monkeypatch.chdir(tmp_path / "here")
    changed = apply_settings(exp, {"data.root": "videos", "data.cache": pathlib.Path("cache")})
    assert changed.data.root == str(tmp_path / "here" / "videos")
    assert changed.data.cache == str(tmp_path / "here" / "cache")


def test_python_settings_must_be_a_mapping_of_dotted_keys(tmp_path):
    import expand

    exp = oracle_experiment(tmp_path)
    for bad, message in ((["schedule.epochs=2"], "settings: expected a mapping of dotted keys to values, got list"),
                         ({"schedule epochs": 2}, "settings: 'schedule epochs': expected a dotted key")):
        with pytest.raises(InputError, match="^" + message):
            expand.search(exp, out=str(tmp_path / "run"), settings=bad, quiet=True)
    assert not (tmp_path / "run").exists()
    with pytest.raises(InputError, match=r"^search\.seed: given twice, by --set and as seed"):
        expand.check_search(exp, settings={"search.seed": 1}, seed=2)
    plan = expand.check_search(exp, settings={"search.max_steps": 1})
    assert plan[0] == "settings: --set search.max_steps=1 (for this run; the file is unchanged)"
    assert "up to 1 steps x 6 candidates" in plan[1]


def test_a_search_keeps_its_settings_shows_them_and_resume_applies_them_again(tmp_path, capsys):
    exp = oracle_experiment(tmp_path, search={"max_steps": 3})
    out = tmp_path / "run"
    argv = ["search", exp, "--out", str(out), "--quiet", "--set", "search.max_steps=1",
            "--set", "trial.options.chance=0.5", "--set", "schedule.epochs=3"]
    assert main(argv) == 0
    state = json.loads((out / "state.json").read_text())
    assert state["settings"] == {"search.max_steps": 1, "trial.options.chance": 0.5, "schedule.epochs": 3}
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert (config["search"]["max_steps"], config["trial"]["options"], config["schedule"]["epochs"]) == (1, {"chance": 0.5}, 3)
    basis = json.loads((out / "trials.jsonl").read_text().splitlines()[0])
    assert basis["result"]["top1"] == pytest.approx(0.5, abs=0.1)  # the oracle's chance level reached the trial: 0.5, not 0.1
    assert len(state["path"]) == 2  # one step, not the file's three
    capsys.readouterr()
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[1] == (f"settings: --set search.max_steps=1 --set trial.options.chance=0.5 --set schedule.epochs=3 "
                        f"(changes to {exp}; config.yaml holds the result)")
    # resume reads the file again with the same settings: an edit under a setting does not show
    # through it (nothing reruns, one step still); an edit elsewhere is still seen
    text = pathlib.Path(exp).read_text()
    pathlib.Path(exp).write_text(text.replace("max_steps: 3", "max_steps: 4"))
    assert main(["resume", str(out), "--quiet"]) == 0
    assert "changed since the run started" not in capsys.readouterr().err
    assert len(json.loads((out / "state.json").read_text())["path"]) == 2
    pathlib.Path(exp).write_text(text.replace("seed: 0", "seed: 5"))
    assert main(["resume", str(out), "--quiet"]) == 2
    assert "changed since the run started (search.seed)" in capsys.readouterr().err


BAD = [
    (["--set", "schedule.epochs"], "argument --set: expected KEY=VALUE"),
    (["--set", "schedule.epochs=0"], "with --set: schedule.epochs: "),
    (["--set", "schedule.epochs=2", "--set", "schedule.epochs=3"], "--set schedule.epochs: given twice"),
]
SEARCH_SEED_TWICE = (["--set", "search.seed=1", "--seed", "2"], "search.seed: given twice")  # train's --seed is the trial's


@pytest.mark.parametrize("command, argv, message", [
    *((c, *bad) for c in (["search"], ["baseline", "--method", "random", "--trials", "2"], ["calibrate"])
      for bad in [*BAD, SEARCH_SEED_TWICE]),
    *((["train", "--preset", "X2D"], *bad) for bad in BAD),
    *((["data", "cache"], *bad) for bad in BAD),
])
def test_each_command_that_takes_settings_refuses_a_bad_one_before_writing(tmp_path, capsys, command, argv, message):
    exp = oracle_experiment(tmp_path)
    out = [] if command[0] == "data" else ["--out", str(tmp_path / "out")]
    code = main([*command[:1 + (command[0] == "data")], exp, *command[1 + (command[0] == "data"):], *out, *argv])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.yaml"]


def test_resume_set_changes_a_key_for_the_rest_of_the_run_and_one_that_reruns_trials_needs_force(tmp_path, capsys):
    import expand

    count = tmp_path / "calls.txt"
    exp = oracle_experiment(tmp_path, options={"count_file": str(count)}, search={"max_steps": 1})
    out = str(tmp_path / "run")
    assert main(["search", exp, "--out", out, "--quiet", "--seed", "4"]) == 0
    calls = count.read_text().splitlines()
    capsys.readouterr()
    # no trial's fingerprint reads retries: applied at once, kept, said in the log; nothing reruns
    assert main(["resume", out, "--quiet", "--set", "retries.failed=3"]) == 0
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["settings"] == {"retries.failed": 3}
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["retries"]["failed"] == 3
    assert "resumed with --set retries.failed=3; no finished trial reruns" in (tmp_path / "run" / "progress.log").read_text()
    assert count.read_text().splitlines() == calls
    assert main(["resume", out, "--quiet"]) == 0  # a later resume applies it again: no "changed"
    # one the fingerprints read (search.seed: every trial's seed) needs --force, as an edited file
    assert main(["resume", out, "--quiet", "--set", "search.seed=5"]) == 2
    assert ("--set: search.seed changes the models' trials (their fingerprints read it): finished trials of "
            "changed models would rerun; add --force to resume so") in capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "state.json").read_text())["settings"] == {"retries.failed": 3}
    run = expand.resume(out, quiet=True, force=True, settings={"search.seed": 5})
    assert run.experiment.search.seed == 5 and len(count.read_text().splitlines()) > len(calls)  # retrained
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    # --set replaced --seed's value: a later resume must not put 4 back
    assert state["settings"] == {"retries.failed": 3, "search.seed": 5} and state["overrides"].get("seed") is None
    assert main(["resume", out, "--quiet"]) == 0
    assert main(["resume", out, "--quiet", "--set", "search.max_steps=2"]) == 2
    assert "--set search.max_steps: on resume, grow the search with --max-steps" in capsys.readouterr().err


def test_a_recipes_placeholder_data_root_is_replaced_by_a_setting(tmp_path, capsys, monkeypatch):
    """experiments/folder_dataset.yaml ships data.root: /datasets/my_videos: --set gives the real one
    (the file's own root is checked only when no setting replaces it)."""
    for split in ("train", "val"):
        for label in ("a b", "c"):  # class folders, one video each (not opened by --check)
            (tmp_path / "videos" / split / label).mkdir(parents=True)
            (tmp_path / "videos" / split / label / "v.mp4").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    argv = ["search", "folder_dataset", "--check", "--set", "data.root=videos", "--set", "data.num_classes=2",
            "--runner", "serial", "--set", "resources.gpus_per_trial=0"]  # this machine has no GPU
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "train: 2 of 2 videos, 2 classes, 1-1 per class" in out
    assert main(argv[:3]) == 2
    assert "folder_dataset.yaml: data.root: /datasets/my_videos does not exist" in capsys.readouterr().err
    assert main([*argv[:3], "--set", "data.max_val_videos=1"]) == 2  # the placeholder is still checked
    assert "with --set: data.root: /datasets/my_videos does not exist" in capsys.readouterr().err


def test_a_mapping_merges_into_a_section_rather_than_resetting_its_other_keys(tmp_path):
    exp = load_experiment(oracle_experiment(tmp_path, options={"chance": 0.2, "weights": {"crop": 0.5}}))
    changed = apply_settings(exp, {"schedule": {"epochs": 3}, "trial.options": {"weights": {"depth": 0.1}}})
    assert changed.schedule.epochs == 3 and changed.schedule.batch_size == exp.schedule.batch_size
    assert changed.trial.options == {"chance": 0.2, "weights": {"crop": 0.5, "depth": 0.1}}
    assert changed.trial.function == exp.trial.function
    assert apply_settings(exp, {"trial.options.weights": None}).trial.options == {"chance": 0.2, "weights": None}
