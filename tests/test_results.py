import os
import csv
import io
import json
import re

import pytest

from expand.cli import main
from expand.results import ROW_COLUMNS, STEP_COLUMNS, cost, step_rows


@pytest.fixture()
def run_dir(oracle_run):
    return oracle_run


def test_show_formats(run_dir, capsys):
    assert main(["show", str(run_dir), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["candidates"]) == 1 + 6 + 6 and data["counter"].startswith("fvcore")
    assert sum(c["chosen"] for c in data["candidates"]) == 3
    assert main(["show", str(run_dir), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0].keys()) == STEP_COLUMNS and len(rows) == 13
    assert "top1_frac" in STEP_COLUMNS and "top1" not in STEP_COLUMNS and len(STEP_COLUMNS) == len(ROW_COLUMNS)
    assert main(["show", str(run_dir), "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert re.search(r"^\| +step \| axis +\|", md, re.M) and "|--" in md and "contracted models" in md
    assert main(["show", str(run_dir)]) == 0
    table = capsys.readouterr().out
    assert "path: basis" in table and "GFLOPs: fvcore" in table and "cost: 13 trials" in table


def _check_latex(text):
    """Pastes into a .tex file: tables balanced, every other line a comment, no unescaped % _ # & in cells."""
    lines = text.rstrip("\n").split("\n")
    assert text.count("\\begin{tabular}") == text.count("\\end{tabular}") >= 1
    in_table = False
    for line in lines:
        if line.startswith("\\begin{tabular}"):
            in_table = True
        if in_table:
            cells = line.rstrip("\\ ").split(" & ")
            assert not [c for c in cells if re.search(r"(?<!\\)[%_#]", c)], line
        else:
            assert not line or line.startswith("% "), line
        if line.startswith("\\end{tabular}"):
            in_table = False
    return lines


def test_show_and_compare_write_latex_a_paper_can_paste(run_dir, tmp_path, capsys):
    assert main(["show", str(run_dir), "--format", "latex"]) == 0
    lines = _check_latex(capsys.readouterr().out)
    assert "\\toprule" in lines and any(line.split()[:1] == ["step"] and "top1 \\%" in line for line in lines)
    assert any(line.startswith("% path: basis") for line in lines)
    assert main(["compare", str(run_dir), "--format", "latex", "--plot", str(tmp_path / "c.png")]) == 0
    lines = _check_latex(capsys.readouterr().out)
    assert any("best top1 \\% @" in line for line in lines)


def test_show_reads_a_half_written_trials_file(run_dir, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    with open(copy / "trials.jsonl", "a") as fh:
        fh.write('{"trial_id": "s03-fast", "step": 3, "ax')
    assert main(["show", str(copy)]) == 0
    assert "1 unreadable line(s) in trials.jsonl ignored" in capsys.readouterr().out


def test_show_counts_a_damaged_line_in_the_middle_of_trials_jsonl_and_resume_reruns_its_trial(run_dir, tmp_path,
                                                                                              capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    lines = (copy / "trials.jsonl").read_text().splitlines()
    lost = json.loads(lines[2])["trial_id"]
    lines[2] = '{"trial_id": 5}'  # valid JSON, not a trial record: an edit or a damaged block
    (copy / "trials.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["show", str(copy)]) == 0
    assert ("note: 1 unreadable line(s) in trials.jsonl ignored (a write cut short, or a damaged or edited "
            "file): their trials count as not run, and `resume` reruns them") in capsys.readouterr().out
    assert main(["resume", str(copy), "--quiet"]) == 0
    ids = [json.loads(line).get("trial_id") for line in (copy / "trials.jsonl").read_text().splitlines()]
    assert ids.count(lost) == 1 and ids[-1] == lost  # rerun once, at the end; nothing else retrained
    assert len(ids) == len(lines) + 1


def test_cost_adds_up_to_trial_seconds(run_dir):
    from expand.run import RunDir

    records = RunDir(str(run_dir)).read_trials().records
    spent = cost(str(run_dir))
    assert spent["total"]["trials"] == len(records)
    assert spent["total"]["trial_seconds"] == pytest.approx(sum(r.result.seconds for r in records))
    assert sum(s["trial_seconds"] for s in spent["per_step"].values()) == pytest.approx(
        spent["total"]["trial_seconds"])


def test_cost_of_a_run_with_no_trials_yet_is_in_floats(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "trials.jsonl").write_text("")
    spent = cost(str(copy))
    assert spent["total"] == {"trials": 0, "trial_seconds": 0.0, "device_hours": 0.0}
    assert isinstance(spent["total"]["device_hours"], float)  # compare prints 0.0000 like its other rows


def test_gain_columns(run_dir):
    rows = step_rows(str(run_dir))
    basis = rows[0]
    for r in rows[1:7]:
        assert r["gain"] == pytest.approx(r["top1"] - basis["top1"])
        assert r["gain_per_gflop"] == pytest.approx(r["gain"] / (r["gflops"] - basis["gflops"]))


def test_plots_are_column_width_pngs_and_pdfs(run_dir, capsys):
    import struct

    assert main(["plot", str(run_dir), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)["figures"]
    assert sorted(os.path.basename(f) for f in figures) == ["expansion.pdf", "expansion.png", "gains.pdf",
                                                           "gains.png"]
    for name in ("expansion", "gains"):
        png = (run_dir / "plots" / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
        width_px = struct.unpack(">I", png[16:20])[0]
        assert width_px == 3.5 * 300  # one paper column at 300 dpi
        pdf = (run_dir / "plots" / f"{name}.pdf").read_bytes()
        assert pdf[:5] == b"%PDF-" and len(pdf) > 5_000


def test_the_expansion_figure_labels_the_path_with_axis_names_and_the_budgets(run_dir):
    from expand.plots import _pyplot, paper_axis_name
    from expand.results import step_rows

    assert paper_axis_name("fast") == "X-Fast" and paper_axis_name("basis") == "basis"
    rows = step_rows(str(run_dir))
    plt = _pyplot()
    captured = {}
    real_save = plt.Figure.savefig

    def keep(fig, *a, **k):
        if "texts" not in captured:
            captured["texts"] = [t.get_text() for ax in fig.axes for t in ax.texts]
            fig.canvas.draw()  # a label that crosses the frame reads as clutter in a paper
            captured["outside"] = [t.get_text() for ax in fig.axes for t in ax.texts
                                   if not ax.get_window_extent().contains(*t.get_window_extent().min)
                                   or not ax.get_window_extent().contains(*t.get_window_extent().max)]
        return real_save(fig, *a, **k)

    plt.Figure.savefig = keep
    try:
        from expand.plots import plot_run

        plot_run(str(run_dir), rows)
    finally:
        plt.Figure.savefig = real_save
    path = [r for r in rows if r["chosen"]]
    labels = captured["texts"]
    for r in path[1:]:
        assert f"{r['step']}: {paper_axis_name(r['axis'])}" in labels
    assert "basis" in labels and any(t.endswith(" GF") for t in labels)  # budgets are labelled lines
    assert captured["outside"] == []


@pytest.mark.parametrize("low, high", [(0.00205, 0.0042), (0.002, 0.014), (0.02, 20.0)])
def test_gflops_tick_labels_do_not_run_into_each_other(tmp_path, monkeypatch, low, high):
    """Plain decimals (0.003: narrower than 3×10⁻³, which touched 4×10⁻³ in a 5-step figure), apart."""
    import expand.plots as plots

    plt, figs, real_save = plots._pyplot(), [], plots._save
    monkeypatch.setattr(plots, "_save", lambda p, fig, png: (figs.append(fig), real_save(p, fig, png))[1])
    fig, ax = plt.subplots(figsize=(plots.COLUMN_WIDTH_IN, 2.8))
    ax.plot([low, high], [10, 90], "-o", label="path")
    plots._save_gflops_figure(plt, fig, ax, "top-1 accuracy (%)", "t", str(tmp_path / "f.png"))
    figs[0].canvas.draw()
    frame = ax.get_window_extent()
    shown = [t for t in ax.get_xticklabels() + ax.get_xticklabels(minor=True)
             if t.get_text() and frame.x0 - 1 <= t.get_window_extent().x0 + t.get_window_extent().width / 2
             <= frame.x1 + 1]
    assert len(shown) >= 2  # a figure within one decade still has numbers on its axis
    assert all(float(t.get_text()) > 0 for t in shown)
    boxes = sorted((t.get_window_extent() for t in shown), key=lambda b: b.x0)
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:]))


def test_show_on_a_non_run_is_exit_2(tmp_path, capsys):
    assert main(["show", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_a_minival_run_shows_what_selected_and_what_reports(tmp_path, capsys):
    from expand.cli import main
    from tests.search.helpers import oracle_experiment

    exp = oracle_experiment(tmp_path, options={"minival_gap": 0.05}, search={"max_steps": 1})
    assert main(["search", exp, "--out", str(tmp_path / "run"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["show", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "top1 % (minival, selects)" in out and "val top1 % (reports)" in out
    import pandas as pd

    csv = pd.read_csv(tmp_path / "run" / "steps.csv")
    assert (csv["top1_frac"] - csv["val_top1_frac"]).round(9).eq(0.05).all()


def test_show_says_when_every_expansion_of_a_step_lost_accuracy(tmp_path, capsys):
    from tests.search.helpers import oracle_experiment

    # every axis hurts under this oracle: the rule still picks one, and only the gain column said so
    weights = {k: -0.05 for k in ("frames", "rate", "crop", "width", "bottleneck", "depth")}
    exp = oracle_experiment(tmp_path, options={"weights": weights}, search={"max_steps": 1})
    assert main(["search", exp, "--out", str(tmp_path / "run")]) == 0
    live = "step 1: every trained candidate scored below its parent: no expansion paid off"
    assert live in capsys.readouterr().out and live in (tmp_path / "run" / "progress.log").read_text()
    assert main(["show", str(tmp_path / "run")]) == 0
    assert "note: step 1: every candidate scored below its parent (the best, " in capsys.readouterr().out
    assert main(["show", str(tmp_path / "run"), "--format", "json"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert len(notes) == 1 and notes[0].startswith("step 1: every candidate scored below its parent")


def test_show_gives_every_step_a_confidence_and_marks_the_close_calls(tmp_path, capsys):
    from tests.search.helpers import confirmed_oracle_run

    run = confirmed_oracle_run(tmp_path)  # step 1 is a coin toss, confirmed with more seeds
    table = capsys.readouterr().out
    import pandas as pd

    csv = pd.read_csv(os.path.join(run, "steps.csv"))
    step1 = csv[csv["step"] == 1]
    assert step1["confidence_frac"].sum() == pytest.approx(1.0)
    chosen = step1[step1["chosen"]].iloc[0]
    assert chosen["confidence_frac"] < 0.95 and chosen["seeds"] == 2 and chosen["top1_se_frac"] > 0
    assert set(step1[step1["seeds"] == 2]["axis"]) == {"spatial", "depth"}
    assert "conf %" in table and "*?" in table and "below the 95% confidence level (1)" in table
    # confirmation ran on step 1 and stayed short: the advice is a larger budget, not to turn it on
    assert "step(s) 1 trained theirs again (the seeds column) and spent search.confirm.max_extra_trials" in table
    assert "above 0" not in table
    header = next(line for line in table.splitlines() if line.split()[:1] == ["step"])
    assert "seeds" in header  # the column appears once a candidate averages seeds
    # and an expansion picture with error bars was drawn
    assert os.path.getsize(os.path.join(run, "plots", "expansion.png")) > 10_000


def test_candidates_on_the_same_point_are_nudged_apart():
    from expand.plots import _dodged

    rows = [{"gflops": 1.0, "top1": 0.5}, {"gflops": 1.0, "top1": 0.5}, {"gflops": 2.0, "top1": 0.5}]
    xs = _dodged(rows)
    assert xs[0] == 1.0 and xs[1] > 1.0 and xs[2] == 2.0


def test_error_bars_only_for_models_averaged_over_seeds():
    from expand.plots import _error_bars

    one_seed = [{"top1_se": 0.03, "seeds": 1}, {"top1_se": 0.02, "seeds": 1}]
    assert _error_bars(one_seed) is None  # its uncertainty is the table's confidence column
    assert _error_bars([{"top1_se": 0.03, "seeds": 2}, {"top1_se": 0.02, "seeds": 1}]) == [3.0, 0.0]


def test_a_run_said_to_be_running_that_nobody_writes_shows_as_stopped(tmp_path, capsys):
    # A search killed, interrupted or stopped by a full disk leaves state.json "running".
    import shutil

    from tests.search.helpers import oracle_experiment
    from expand.run import RunDir

    exp = oracle_experiment(tmp_path, search={"max_steps": 1, "targets": []})
    run = tmp_path / "run"
    assert main(["search", exp, "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    killed = tmp_path / "killed"
    shutil.copytree(run, killed)
    state = json.loads((killed / "state.json").read_text())
    (killed / "state.json").write_text(json.dumps(dict(state, status="running", stop_reason="")))
    assert main(["show", str(killed)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "status: stopped  (not running: " in first and f"'x3d-expand resume {killed}' continues it" in first
    log = killed / "progress.log"  # what the run's log says of how its last command ended
    for tail, said in (("2026-12-07 04:02:28 stopped: SIGHUP", "not running: stopped: SIGHUP at 2026-12-07 04:02:28 "
                                                             "(progress.log); 'x3d-expand resume"),
                       ("2026-12-07 04:02:28   start  s01-fast   x3d_2x4_64", "not running: its log ends at "
                        "2026-12-07 04:02:28 without a last word: killed (kill -9, the out-of-memory killer)")):
        log.write_text("2026-12-07 04:02:20 == x3d-expand search exp.yaml (pid 1 on vm)\n" + tail + "\n")
        assert main(["show", str(killed)]) == 0
        assert said in capsys.readouterr().out.splitlines()[0]
    log.unlink()  # a run from before the log: the causes it may have had
    assert main(["show", str(killed)]) == 0
    assert "not running: interrupted, killed, out of disk" in capsys.readouterr().out.splitlines()[0]
    import expand

    assert expand.load_run(str(killed)).status == "stopped"  # the Python API says it as show does
    writer = RunDir(str(killed)).acquire("search")  # now a process writes it
    try:
        assert main(["show", str(killed), "--format", "json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["status"] == "running" and f"pid {os.getpid()}" in shown["writer"]
        assert shown["stop_reason"].startswith("in progress: pid ")
        assert expand.load_run(str(killed)).status == "running"
    finally:
        writer.release()
    assert main(["show", str(run), "--format", "json"]) == 0  # a finished run: as state.json says
    assert json.loads(capsys.readouterr().out)["status"] == "finished"


def test_looking_at_the_lock_never_makes_a_starting_writer_fail(tmp_path):
    # `watch x3d-expand show RUN` probes the lock every second; a resume starting in that
    # instant must wait the microseconds out instead of exiting 'being written by'.
    import fcntl
    import threading
    import time

    from expand.run import RunDir

    run = RunDir(str(tmp_path / "run"))
    run.create()
    fd = os.open(os.path.join(run.path, ".lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_SH)  # a reader's probe, held far longer than a real one
    threading.Timer(0.2, os.close, (fd,)).start()
    started = time.monotonic()
    run.acquire("resume")
    try:
        assert 0.1 < time.monotonic() - started < 5 and run.lock.held
    finally:
        run.release()


def test_show_during_a_step_gives_the_results_of_its_trials_that_have_trained(tmp_path, capsys, _isolated_cache):
    # state.json records a step when it is decided; on GPUs a step takes hours. Here the search
    # stopped mid-step (a full disk under s01-depth), as a step in progress looks to a reader.
    from expand.run import RunDir
    from tests.search.helpers import oracle_experiment

    flag = tmp_path / "disk-is-full"
    flag.write_text("")
    exp = oracle_experiment(tmp_path, options={"disk_full_file": str(flag), "disk_full_axes": ["depth"],
                                               "fail_axes": {"width": 9}},
                            search={"max_steps": 1, "targets": []}, retries={"failed": 0})
    run = tmp_path / "run"
    assert main(["search", exp, "--out", str(run), "--quiet"]) == 1
    capsys.readouterr()
    trained = {r.trial.trial_id: r.result for r in RunDir(str(run)).read_trials().records}
    step1 = {r["axis"]: r for r in step_rows(str(run)) if r["step"] == 1}
    assert step1["depth"]["status"] == "pending" and step1["depth"]["top1"] != step1["depth"]["top1"]  # NaN
    assert step1["width"]["status"] == "failed" and "injected failure" in step1["width"]["reason"]
    for axis in ("fast", "temporal", "spatial", "bottleneck"):
        assert step1[axis]["status"] == "ok" and step1[axis]["top1"] == trained[f"s01-{axis}"].top1
        assert step1[axis]["gain"] == trained[f"s01-{axis}"].top1 - trained["s00-basis"].top1
    assert not any(r["chosen"] for r in step1.values())  # nothing is decided yet
    assert main(["show", str(run)]) == 0
    assert "59.6" in capsys.readouterr().out  # the fast candidate's top-1, as the table prints it

    state = json.loads((run / "state.json").read_text())  # a record made before resume --force changed it
    fast = next(c for c in state["steps"][0]["candidates"] if c["axis"] == "fast")
    fast["spec"]["frames"] = 3
    (run / "state.json").write_text(json.dumps(state))
    assert {r["axis"]: r for r in step_rows(str(run)) if r["step"] == 1}["fast"]["status"] == "pending"


def test_show_says_when_a_step_chose_without_some_of_its_candidates(tmp_path, run_dir, capsys, _isolated_cache):
    from tests.search.helpers import oracle_experiment

    exp = oracle_experiment(tmp_path, options={"oom_axes": {"depth": 9}, "fail_axes": {"width": 9}},
                            search={"max_steps": 1, "targets": []}, retries={"oom": 1, "failed": 0})
    assert main(["search", exp, "--out", str(tmp_path / "run"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["show", str(tmp_path / "run")]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: step")]
    assert notes == ["note: step 1 chose among 4 of its 6 candidates, without depth oom (CUDA out of memory "
                     "(injected)); width failed (RuntimeError: injected failure on width (attempt 1))"]
    assert main(["show", str(run_dir)]) == 0
    assert "note: step" not in capsys.readouterr().out  # every candidate of that run trained


def test_show_says_why_a_step_that_trained_none_of_its_candidates_stopped_the_search(tmp_path, capsys,
                                                                                    _isolated_cache):
    """The table said 'failed' on each row and nothing else; the reasons were only in the CSV."""
    from tests.search.helpers import oracle_experiment

    axes = ("fast", "temporal", "spatial", "depth", "width", "bottleneck")
    exp = oracle_experiment(tmp_path, options={"fail_axes": dict.fromkeys(axes, 9)},
                            search={"max_steps": 2, "targets": []}, retries={"failed": 0})
    assert main(["search", exp, "--out", str(tmp_path / "run"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["show", str(tmp_path / "run")]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: step")]
    assert notes == ["note: step 1 trained none of its 6 candidates, so the search stopped there: " + "; ".join(
        f"{a} failed (RuntimeError: injected failure on {a} (attempt 1))" for a in axes)
        + ". Once the cause is fixed, `x3d-expand resume RUN --set retries.failed=N` (N above the attempts they "
        "had) trains them again; finished trials are kept"]
    assert main(["show", str(tmp_path / "run"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] == [n[len("note: "):] for n in notes]
    # as the note says: with one more retry allowed (no --force: no fingerprint reads retries), the resume
    # trains them (their second attempt fails too here: fail_axes 9) and retrains nothing that finished
    assert main(["resume", str(tmp_path / "run"), "--set", "retries.failed=1", "--quiet"]) == 0
    ids = [json.loads(line)["trial_id"] for line in (tmp_path / "run" / "trials.jsonl").read_text().splitlines()]
    assert ids.count("s00-basis") == 1 and all(ids.count(f"s01-{a}") == 2 for a in axes)


def test_show_of_a_baseline_without_a_cap_says_so(tmp_path, capsys, _isolated_cache):
    from tests.search.helpers import oracle_experiment

    exp = oracle_experiment(tmp_path, search={"targets": []})
    argv = ["baseline", exp, "--method", "random", "--trials", "1", "--out", str(tmp_path / "run"), "--quiet"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["show", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"random baseline: 1 of 1 trials trained, no GFLOP cap, \d+ repeats", out)
    assert "None" not in out  # was "0 samples over the cap None GFLOPs"


def test_a_budget_just_under_the_last_path_model_keeps_its_label_clear_of_the_path_labels(tmp_path, monkeypatch):
    """The demo's shape: one step past a budget. Its label at the top of its line ran into '1: X-Depth'."""
    import expand.plots as plots

    plt, figs, real_save = plots._pyplot(), [], plots._save
    monkeypatch.setattr(plots, "_save", lambda p, fig, png: (figs.append(fig), real_save(p, fig, png))[1])
    row = {"seeds": 1, "top1_std": None}
    ok = [{**row, "step": 0, "axis": "basis", "gflops": 0.00205, "top1": 0.25, "chosen": True},
          {**row, "step": 1, "axis": "depth", "gflops": 0.00413, "top1": 0.292, "chosen": True}] + \
         [{**row, "step": 1, "axis": a, "gflops": 0.00405, "top1": 0.25, "chosen": False}
          for a in ("fast", "temporal", "spatial", "width", "bottleneck")]
    plots._plot_expansion(plt, ok, [{"target_gflops": 0.004, "gflops": 0.0039, "top1": None}],
                          str(tmp_path / "expansion.png"))
    fig = figs[0]
    fig.canvas.draw()
    boxes = [(t.get_text(), t.get_window_extent()) for ax in fig.axes for t in ax.texts]
    assert {"basis", "1: X-Depth", "0.004 GF"} <= {text for text, _ in boxes}
    assert [(a, b) for i, (a, box) in enumerate(boxes) for b, other in boxes[i + 1:] if box.overlaps(other)] == []


def test_show_of_a_run_in_progress_tells_training_trials_from_queued_ones(run_dir, tmp_path, capsys):
    import shutil

    from expand.run import RunDir

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    state = json.loads((run / "state.json").read_text())
    step = state["steps"][-1]
    for c in step["candidates"][:3]:  # step 2's first three not trained yet: two train, one waits
        c.update(status="pending", top1=None, chosen=False)
    state["status"], state["path"] = "running", state["path"][:-1]
    (run / "state.json").write_text(json.dumps(state))
    ids = [c["trial_id"] for c in step["candidates"][:3]]
    (run / "trials.jsonl").write_text("".join(line + "\n" for line in (run / "trials.jsonl").read_text().splitlines()
                                              if json.loads(line)["trial_id"] not in ids))
    (run / "progress.log").write_text("".join(f"2026-12-07 04:02:20 {line}\n" for line in [
        "== x3d-expand resume run (pid 1 on vm)", *(f"  start  {t}" for t in ids),
        f"  ...    {ids[0]}              opening the data", f"  epoch  {ids[1]}              1/3 loss 2.0"]))
    writer = RunDir(str(run)).acquire("resume")
    try:
        assert main(["show", str(run), "--json"]) == 0
        shown = {c["trial_id"]: c["status"] for c in json.loads(capsys.readouterr().out)["candidates"]}
    finally:
        writer.release()
    assert [shown[t] for t in ids] == ["running", "running", "pending"]
    assert main(["show", str(run), "--json"]) == 0  # nobody writes it: stopped, nothing runs
    shown = {c["trial_id"]: c["status"] for c in json.loads(capsys.readouterr().out)["candidates"]}
    assert [shown[t] for t in ids] == ["pending"] * 3


def test_show_says_which_machines_ran_the_trials_when_there_are_several(run_dir, tmp_path, capsys):
    import shutil
    import socket

    import expand

    here = socket.gethostname()
    assert main(["show", str(run_dir), "--json"]) == 0
    per_host = json.loads(capsys.readouterr().out)["hosts"]
    assert list(per_host) == [here] and per_host[here]["trials"] == 13 and per_host[here]["not_ok"] == 0
    assert main(["show", str(run_dir)]) == 0
    assert "hosts: " not in capsys.readouterr().out  # one machine: nothing to say
    assert set(expand.load_run(str(run_dir)).trials["host"]) == {here}
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    lines = [json.loads(line) for line in (run / "trials.jsonl").read_text().splitlines()]
    for rec in lines:  # step 2 "ran" on another node, under another torch, and one of its trials failed there
        extra = rec["result"].setdefault("extra", {})
        extra["torch"] = "2.13.0"
        if rec["step"] == 2:
            extra.update(host="gpu-b", torch="2.4.1")
            if rec["axis"] == "width":
                rec["result"].update(status="failed", top1=None, error="CUDA error: an illegal memory access")
    (run / "trials.jsonl").write_text("".join(json.dumps(rec) + "\n" for rec in lines))
    assert main(["show", str(run)]) == 0
    said = {"gpu-b": ("gpu-b 6 (1 not ok)", "2.4.1 on gpu-b"), here: (f"{here} 7", f"2.13.0 on {here}")}
    order = sorted(said)  # hosts in name order
    assert (f"hosts: 2 ran trials: {said[order[0]][0]}, {said[order[1]][0]}; torch differs: "
            f"{said[order[0]][1]}, {said[order[1]][1]}") in capsys.readouterr().out
