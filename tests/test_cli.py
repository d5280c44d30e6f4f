import json
import os
import subprocess
import sys

import pytest

from expand.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv", [("--preset", "X3D-M"), ("X3D-M",), ("M", "--preset", "X3D-M")])
def test_flops_preset_table(capsys, argv):
    code, out, err = run(capsys, "flops", *argv)
    assert code == 0
    assert "x3d_16x5_224_w2.0_b2.25_d2.2" in out
    assert "4.8987" in out and "3794322" in out
    assert "fvcore" in out and "train crop" in out  # the counter is always named


def test_flops_json_is_one_object(capsys):
    code, out, _ = run(capsys, "flops", "--frames", "2", "--stride", "4", "--crop", "64",
                       "--width", "1", "--bottleneck", "1", "--depth", "1", "--classes", "10",
                       "--json")
    assert code == 0
    data = json.loads(out)
    assert out.count("\n") == 1
    assert data["spec"]["num_classes"] == 10
    assert abs(sum(s["gflops"] for s in data["stages"]) - data["gflops"]) < 1e-9


@pytest.mark.parametrize(
    "argv, message",
    [
        (["flops"], "give --preset NAME or all six factors"),
        (["flops", "--preset", "X3D-Q"], "unknown preset 'X3D-Q'"),
        (["flops", "X3D-Q"], "unknown preset 'X3D-Q'"),
        (["flops", "X3D-M", "--preset", "X3D-S"], "two presets given"),
        (["flops", "X3D-M", "--width", "2"], "cannot be combined with --width"),
        (["flops", "--preset", "X3D-M", "--frames", "4"], "cannot be combined with --frames"),
        (["flops", "--frames", "0", "--stride", "1", "--crop", "64", "--width", "1",
          "--bottleneck", "1", "--depth", "1"], "--frames: must be an integer >= 1, got 0"),  # the flag typed
        (["train", "oracle", "--frames", "4", "--stride", "1", "--crop", "63", "--width", "1",
          "--bottleneck", "1", "--depth", "1"], "--crop: must be a multiple of 4, got 63"),
        (["flops", "--crop", "abc"], "invalid int value"),
        (["flops", "--preset", "X3D-M", "--classes", "0"], "must be >= 1"),
        (["launch"], "invalid choice"),
        # 1000000000 encoded for ever; --workers 100000 forked 100000 processes
        (["data", "synth", "out", "--videos-per-class", "1000000000"],
         "--videos-per-class: must be 1-10000 (videos per class), got 1000000000"),
        (["data", "synth", "out", "--workers", "100000"], "--workers: must be 1-256 (processes), got 100000"),
        (["data", "check", "out", "--workers", "0"], "--workers: must be 1-256 (processes), got 0"),
        (["data", "cache", "synthetic_tiny", "--workers", "257"], "--workers: must be 1-256 (processes), got 257"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.strip().count("\n") == 0
    assert out == ""


def test_presets_json_lists_the_family(capsys):
    code, out, _ = run(capsys, "presets", "--json")
    data = json.loads(out)
    names = [p["name"] for p in data["presets"]]
    assert names == ["X2D", "X3D-XS", "X3D-S", "X3D-M", "X3D-L", "X3D-XL"]
    m = data["presets"][names.index("X3D-M")]
    assert m["test_crop"] == 256 and abs(m["gflops"] - 4.8987) < 1e-3 and m["blocks"] == [3, 5, 11, 7]
    assert "derived" in data["presets"][-1]["source"]


def test_console_script_runs():
    proc = subprocess.run([sys.executable, "-m", "expand.cli", "flops", "--preset", "XS", "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["spec"]["frames"] == 4


def _walk(parser, prefix=()):
    import argparse

    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, prefix + (name,))


def test_every_option_and_positional_has_help():
    from expand.cli import build_parser

    missing = []
    for prefix, parser in _walk(build_parser()):
        for action in parser._actions:
            if action.help in (None, "") and action.dest != "help":
                missing.append(f"{' '.join(prefix) or '(top)'} {action.option_strings or action.dest}")
    assert missing == []


RESULT_COMMANDS = {("presets",), ("flops",), ("data", "synth"), ("data", "check"), ("data", "cache"),
                   ("train",), ("search",), ("resume",), ("calibrate",), ("contract",), ("show",), ("plot",),
                   ("baseline",), ("compare",), ("export",), ("stop",)}


def test_every_command_that_prints_a_result_takes_json():
    from expand.cli import build_parser

    commands = {prefix: parser for prefix, parser in _walk(build_parser()) if prefix and prefix != ("data",)}
    assert set(commands) == RESULT_COMMANDS
    for prefix, parser in commands.items():
        assert "--json" in parser._option_string_actions, prefix


def test_version(capsys):
    from expand import __version__

    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"x3d-expand {__version__}"


@pytest.mark.parametrize("argv, dest, numbers, positional", [
    (["contract", "--target-gflops", "0.003", "RUN"], "target_gflops", [0.003], ("run_dir", "RUN")),
    (["contract", "--target-gflops", "0.003", "0.01", "RUN"], "target_gflops", [0.003, 0.01], ("run_dir", "RUN")),
    (["contract", "RUN", "--target-gflops", "0.003"], "target_gflops", [0.003], ("run_dir", "RUN")),
    (["compare", "--budgets", "1", "2", "a", "b"], "budgets", [1.0, 2.0], ("run_dirs", ["a", "b"])),
    (["search", "--targets", "0.5", "exp.yaml"], "targets", [0.5], ("experiment", "exp.yaml")),
    (["search", "exp.yaml", "--targets"], "targets", [], ("experiment", "exp.yaml")),
    (["calibrate", "--schedules", "1", "2", "exp.yaml"], "schedules", [1.0, 2.0], ("experiment", "exp.yaml")),
])
def test_a_number_list_before_the_positional_does_not_swallow_it(argv, dest, numbers, positional):
    from expand.cli import build_parser

    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == numbers
    assert getattr(args, positional[0]) == positional[1]


@pytest.mark.parametrize("argv, message", [
    (["contract", "--target-gflops", "0.003"], "required: RUN_DIR"),
    (["contract", "--target-gflops", "x", "RUN"], "expected a number, got 'x'"),
    (["contract", "--target-gflops", "0.003", "-1", "RUN"], "must be a finite number > 0"),
    (["contract", "--target-gflops", "0.003", "A", "B"], "unrecognized arguments: A B"),
    (["compare", "--budgets", "1"], "required: RUN_DIRS"),
])
def test_number_lists_reject_what_is_not_a_number_or_a_place(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and message in err and err.count("\n") == 1


@pytest.mark.parametrize("plot, needle", [
    ("/proc/x.png", "--plot /proc/x.png: /proc: cannot write in the plot's folder"),
    ("FOLDER.png", "a folder has that name (or its .pdf's)"),
])
def test_compare_plot_where_no_file_can_be_written_is_exit_2(oracle_run, tmp_path, capsys, plot, needle):
    """Both were "internal error: FileNotFoundError" / "IsADirectoryError" after the runs were read."""
    if plot == "FOLDER.png":
        (tmp_path / "x.png").mkdir()
        plot = str(tmp_path / "x.png")
    elif not os.path.isdir("/proc/self"):  # Linux
        pytest.skip("no /proc here")
    code, out, err = run(capsys, "compare", str(oracle_run), "--plot", plot)
    assert code == 2 and needle in err and err.count("\n") == 1


def test_show_json_and_format_json_are_the_same(oracle_run, capsys):
    code, a, _ = run(capsys, "show", str(oracle_run), "--json")
    code2, b, _ = run(capsys, "show", str(oracle_run), "--format", "json")
    assert code == code2 == 0 and json.loads(a) == json.loads(b)


def test_search_json_prints_one_object_and_sends_progress_to_stderr(tmp_path, capsys, _isolated_cache):
    from tests.search.helpers import oracle_experiment

    exp = oracle_experiment(tmp_path, search={"max_steps": 1, "targets": []})
    code, out, err = run(capsys, "search", exp, "--out", str(tmp_path / "run"), "--json")
    assert code == 0
    data = json.loads(out)
    assert out.count("\n") == 1 and data["status"] == "finished"
    assert "run folder:" in err and "step 1" in err


def test_help_shows_a_positional_after_a_number_list_as_required(capsys):
    code, out, _ = run(capsys, "contract", "--help")
    assert code == 0
    usage = " ".join(out.split("\n\n")[0].split())
    assert usage.endswith("RUN_DIR") and "[RUN_DIR]" not in usage


def test_search_stops_a_hung_trial_at_the_experiments_time_limit_and_shows_it(tmp_path, capsys, _isolated_cache):
    from tests.search.helpers import oracle_experiment

    exp = oracle_experiment(tmp_path, options={"hang_axes": {"depth": 9}, "hang_s": 60}, trial={"time_limit_s": 0.5},
                            search={"max_steps": 1, "targets": []})
    code, out, err = run(capsys, "search", exp, "--out", str(tmp_path / "run"))
    assert code == 0, err
    assert "TIMEOUT: stopped after" in out + err  # the progress line says what happened
    code, out, _ = run(capsys, "show", str(tmp_path / "run"), "--json")
    (depth,) = [c for c in json.loads(out)["candidates"] if c["axis"] == "depth"]
    assert depth["status"] == "timeout" and not depth["chosen"]


def test_a_search_whose_basis_failed_draws_no_figure_and_says_so(tmp_path, capsys, _isolated_cache):
    from tests.search.helpers import oracle_experiment

    exp = oracle_experiment(tmp_path, options={"fail_axes": {"basis": 9}}, search={"max_steps": 1, "targets": []})
    code, out, err = run(capsys, "search", exp, "--out", str(tmp_path / "run"))
    assert code == 1 and "status: failed" in out + err
    assert "could not write tables/plots" not in out + err  # nothing to draw is not an error
    code, out, _ = run(capsys, "plot", str(tmp_path / "run"))
    assert code == 0 and out.strip() == "no figures: the run has no finished trial with an accuracy yet"
    assert not os.listdir(tmp_path / "run" / "plots")


def test_a_ray_address_nothing_answers_at_is_exit_2_with_nothing_written(tmp_path, capsys, _isolated_cache):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "run"
    assert main(["search", "oracle", "--runner", "ray", "--address", f"127.0.0.1:{port}", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--address 127.0.0.1:{port}: no Ray cluster answers" in err[0]
    assert not out.exists()
    # data cache loads the experiment first: its data must exist here, or the error is the missing root
    # (a fresh clone has no data/synthetic: CI failed on that while a working tree passed)
    from expand.data.synth import SynthConfig, write_dataset
    from tests.search.helpers import oracle_experiment

    root = tmp_path / "synth"
    write_dataset(SynthConfig(str(root), classes=2, videos_per_class=1, val_per_class=1, frames=4, size=32, seed=1))
    exp = oracle_experiment(tmp_path, data={"root": str(root), "num_classes": 2})
    assert main(["data", "cache", exp, "--address", f"ray://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no Ray cluster answers" in err[0]


def _search_in_background(tmp_path, ignore_hangup=False):
    """A serial search in its own session (as in a terminal), once its basis is recorded."""
    import signal
    import time

    from tests.search.helpers import oracle_experiment

    exp = oracle_experiment(tmp_path, options={"sleep": 0.5}, search={"max_steps": 1, "targets": []})
    run = tmp_path / "run"
    # nohup starts the program with SIGHUP ignored, and a child inherits that: set either way, since
    # this test itself may run under nohup (as a CI job can)
    disposition = signal.SIG_IGN if ignore_hangup else signal.SIG_DFL
    proc = subprocess.Popen([sys.executable, "-m", "expand.cli", "search", exp, "--out", str(run), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, disposition))
    deadline = time.monotonic() + 120
    trials = run / "trials.jsonl"
    while not (trials.exists() and "s00-basis" in trials.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()
    return proc, run


def test_a_hangup_stops_the_search_in_order_and_resume_retrains_nothing(tmp_path, capsys, _isolated_cache):
    # ssh dropped without tmux: SIGHUP to the terminal's process group. Its default (die at once)
    # orphans a local Ray cluster; handled like SIGTERM, everything is closed in order.
    import signal

    proc, run = _search_in_background(tmp_path)
    os.killpg(proc.pid, signal.SIGHUP)
    assert proc.wait(60) == 129
    err = proc.stderr.read().strip().splitlines()
    assert err == ["x3d-expand: terminated (SIGHUP: the terminal or ssh session closed); finished trials "
                   "are kept, 'resume' continues"]
    before = [json.loads(x)["trial_id"] for x in (run / "trials.jsonl").read_text().splitlines()]
    assert main(["show", str(run)]) == 0
    assert "status: stopped  (not running: stopped: SIGHUP at " in capsys.readouterr().out.splitlines()[0]
    assert main(["resume", str(run), "--quiet"]) == 0
    after = [json.loads(x)["trial_id"] for x in (run / "trials.jsonl").read_text().splitlines()]
    assert after[:len(before)] == before and len(after) == len(set(after)) == 7  # none twice
    log = (run / "progress.log").read_text().splitlines()  # the run's own record of both commands
    headers = [i for i, line in enumerate(log) if line[20:].startswith("== ") and "== done" not in line]
    assert len(headers) == 2 and " search " in log[headers[0]] and " resume " in log[headers[1]]
    assert log[headers[1] - 1].endswith("stopped: SIGHUP")  # the search's last word, then the resume's
    assert log[-1][20:].startswith("== done in ")


def test_under_nohup_a_hangup_is_still_ignored(tmp_path, _isolated_cache):
    import signal

    proc, run = _search_in_background(tmp_path, ignore_hangup=True)
    os.killpg(proc.pid, signal.SIGHUP)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(1.0)  # still searching
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(60) == 143 and "terminated (SIGTERM)" in proc.stderr.read()


@pytest.mark.parametrize("command", [["search"], ["baseline", "--method", "random", "--trials", "2"]])
def test_gpus_per_trial_for_the_serial_runner_where_torch_has_no_cuda_is_exit_2(tmp_path, capsys, command,
                                                                                 _isolated_cache):
    import torch

    from tests.search.helpers import oracle_experiment

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    exp = oracle_experiment(tmp_path, search={"max_steps": 1, "targets": []}, resources={"gpus_per_trial": 1})
    code, out, err = run(capsys, *command, exp, "--out", str(tmp_path / "run"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.strip().startswith(f"x3d-expand: error: {exp}: resources.gpus_per_trial: 1 GPUs per trial, but "
                                  "the serial runner trains in this process and CUDA is not available here (")
    assert not (tmp_path / "run").exists()


def test_a_disk_error_a_library_wrapped_is_still_the_disk_line_not_an_internal_error(monkeypatch, capsys):
    # A library that catches the OSError and raises its own (Ray Tune's state save, torch's
    # writers) must not turn a full disk into "internal error", which reads as our bug.
    import errno

    from expand import commands

    def handler(args):
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/runs/r1/ray/state.json")
        except OSError as exc:
            raise RuntimeError("could not save the experiment state") from exc

    monkeypatch.setitem(commands.HANDLERS, "presets", handler)
    assert main(["presets"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("x3d-expand: error: no space left writing /runs/r1/ray/state.json; what finished is kept: "
                   "fix the disk (free space) and run it again (a search continues with 'x3d-expand resume RUN')")
