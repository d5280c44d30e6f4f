import json

import pytest
import yaml

from expand.cli import main
from expand.errors import SpecError
from expand.export import slowfast_config, spec_from_slowfast
from expand.presets import get_preset
from expand.run import RunDir


def _path(run_dir):
    return RunDir(str(run_dir)).read_state()["path"]


def test_export_step_round_trips_to_the_same_model(oracle_run, counter, capsys):
    from expand.spec import ArchSpec

    step = _path(oracle_run)[-1]
    assert main(["export", str(oracle_run), "--step", str(step["step"]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["path"].startswith(str(oracle_run / "export")) and "x3d_step2_gflops@" in out["path"]
    with open(out["path"]) as fh:
        text = fh.read()
    assert text.startswith("# SlowFast X3D config written by x3d-expand")
    cfg = yaml.safe_load(text)
    assert cfg["MODEL"]["ARCH"] == "x3d" and cfg["MODEL"]["NUM_CLASSES"] == 10
    back = spec_from_slowfast(cfg)
    original = ArchSpec.from_dict(step["spec"])
    assert back == original
    assert counter.params(back) == step["params"] == out["params"]
    assert counter.gflops(back) == pytest.approx(step["gflops"], rel=1e-9)


def test_export_budget_uses_the_contraction(oracle_run, counter, capsys):
    assert main(["export", str(oracle_run), "--target-gflops", "0.006", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["path"].endswith("x3d_gflops@0.006.yaml")
    with open(out["path"]) as fh:
        back = spec_from_slowfast(yaml.safe_load(fh))
    contracted = json.loads((oracle_run / "contractions.json").read_text())
    item = next(c for c in contracted if c["target_gflops"] == 0.006)
    assert back.to_dict() == item["spec"]
    assert counter.gflops(back) <= 0.006 * 1.02


def test_export_x3d_m_matches_slowfasts_config():
    cfg = slowfast_config(get_preset("X3D-M").spec)
    assert cfg["X3D"] == {"WIDTH_FACTOR": 2.0, "DEPTH_FACTOR": 2.2, "BOTTLENECK_FACTOR": 2.25, "DIM_C1": 12,
                          "DIM_C5": 2048, "SCALE_RES2": False, "BN_LIN5": False, "CHANNELWISE_3x3x3": True}
    data = cfg["DATA"]
    assert (data["NUM_FRAMES"], data["SAMPLING_RATE"], data["TRAIN_CROP_SIZE"], data["TEST_CROP_SIZE"]) == (16, 5, 224, 256)
    assert data["TRAIN_JITTER_SCALES"] == [256, 320]


def test_export_refuses_what_slowfast_cannot_build():
    spec = get_preset("X3D-S").spec.replace(stem_kernel_t=3)
    with pytest.raises(SpecError, match="stem_kernel_t"):
        slowfast_config(spec)


def test_export_bad_inputs_exit_2(oracle_run, tmp_path, capsys):
    assert main(["export", str(oracle_run), "--step", "9"]) == 2
    assert "--step 9" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "--step", "1"]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["export", str(oracle_run)]) == 2  # neither --step nor --target-gflops
    assert main(["export", str(oracle_run), "--target-gflops", "0.0001"]) == 2
    assert "impossible" in capsys.readouterr().err


def _slowfast_parser():
    """SlowFast's tools/run_net.py arguments (slowfast/utils/parser.py): --cfg files, --opts the rest."""
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--cfg", dest="cfg_files", nargs="+")
    p.add_argument("--opts", default=None, nargs=argparse.REMAINDER)
    return p


def _has_key(cfg, dotted):
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_slowfast_export_prints_a_command_slowfasts_parser_reads(oracle_run, capsys):
    import shlex

    assert main(["export", str(oracle_run), "--step", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    argv = shlex.split(out["train_command"])
    assert argv[:2] == ["python", "tools/run_net.py"]
    args = _slowfast_parser().parse_args(argv[2:])
    assert args.cfg_files == [out["path"]]
    cfg = yaml.safe_load(open(out["path"]))
    keys = args.opts[0::2]
    assert {"DATA.PATH_TO_DATA_DIR", "NUM_GPUS", "TRAIN.BATCH_SIZE", "OUTPUT_DIR"} <= set(keys)
    # yacs' merge_from_list only sets keys that exist: every override must be a key the file has
    assert all(_has_key(cfg, k) for k in keys)
    # the required keys are in the file with placeholders that fail loudly until set
    assert cfg["DATA"]["PATH_TO_DATA_DIR"].startswith("REQUIRED") and cfg["OUTPUT_DIR"].startswith("REQUIRED")
    assert cfg["NUM_GPUS"] == 8 and cfg["TRAIN"]["BATCH_SIZE"] == 128
    assert "REQUIRED before training" in open(out["path"]).read()


def test_slowfast_export_names_a_synth_dataset_as_its_data_dir(tmp_path):
    from expand.config import DataConfig
    from expand.data.synth import SynthConfig, write_dataset
    from expand.export import slowfast_data_dir

    write_dataset(SynthConfig(str(tmp_path / "d"), classes=2, videos_per_class=1, val_per_class=1, frames=4,
                              size=32))

    class Exp:
        data = DataConfig(root=str(tmp_path / "d"), num_classes=2)

    assert slowfast_data_dir(Exp) == (str(tmp_path / "d"), str(tmp_path / "d"))
    (tmp_path / "d" / "test.csv").unlink()  # SlowFast's test phase needs it: no data dir then
    assert slowfast_data_dir(Exp) == (None, "")


def _folder_dataset(root, names):
    for split in ("train", "val"):
        for name in names:
            (root / split / name).mkdir(parents=True)
            for i in range(2):
                (root / split / name / f"clip {i}, x.mp4").write_bytes(b"")  # listed, never decoded here


def _slowfast_reads(folder, separator):
    """Each split as SlowFast's Kinetics loader parses it: line.split(separator) must give path, label."""
    out = {}
    for split in ("train", "val", "test"):
        rows = [line.split(separator) for line in (folder / f"{split}.csv").read_text().splitlines()]
        assert all(len(r) == 2 for r in rows), rows
        out[split] = [(p, int(label)) for p, label in rows]
    return out


def test_slowfast_export_writes_manifests_slowfast_can_split_for_a_folder_dataset(tmp_path):
    """SlowFast reads only train/val/test.csv and splits each line on its separator into exactly two
    fields: a folder dataset has no manifests, and these paths hold a space and a comma."""
    from expand.config import DataConfig
    from expand.data.manifest import load_split
    from expand.export import slowfast_data

    _folder_dataset(tmp_path / "d", ["play ball", "b,c"])

    class Exp:
        data = DataConfig(format="folder", root=str(tmp_path / "d"), train="train", val="val", num_classes=2)

    sf = slowfast_data(Exp, str(tmp_path / "sf"))
    assert (sf.folder, sf.prefix, sf.separator) == (str(tmp_path / "sf"), "", "|")
    assert sf.note.startswith(f"SlowFast manifests written to {tmp_path / 'sf'} (4 train, 4 val videos")
    read = _slowfast_reads(tmp_path / "sf", "|")
    for split in ("train", "val"):  # the videos and labels the trials used
        assert read[split] == [(i.path, i.label) for i in load_split(Exp.data, split)]
    assert read["test"] == read["val"]


def test_slowfast_export_rewrites_manifests_whose_paths_hold_their_separator(tmp_path):
    from expand.config import DataConfig
    from expand.export import slowfast_data

    root = tmp_path / "d"
    root.mkdir()
    for name in ("train", "val", "test"):  # SlowFast's layout, but a path with a space in it
        (root / f"{name}.csv").write_text("videos/a b.mp4 0\nvideos/c.mp4 1\n")

    class Exp:
        data = DataConfig(root=str(root), num_classes=2)

    sf = slowfast_data(Exp, str(tmp_path / "sf"))
    assert sf.folder == str(tmp_path / "sf") and sf.separator == ","  # " " splits 'videos/a b.mp4 0' in 3
    assert _slowfast_reads(tmp_path / "sf", ",")["train"] == [(str(root / "videos" / "a b.mp4"), 0),
                                                            (str(root / "videos" / "c.mp4"), 1)]
    (root / "train.csv").write_text("videos/ab.mp4 0\nvideos/c.mp4 1\n")
    for name in ("val", "test"):
        (root / f"{name}.csv").write_text("videos/c.mp4 1\n")
    assert slowfast_data(Exp, str(tmp_path / "sf2")) == type(sf)(str(root), str(root), " ")  # used as it is
    assert not (tmp_path / "sf2").exists()

    class Gone:
        data = DataConfig(root=str(tmp_path / "elsewhere"), num_classes=2)

    gone = slowfast_data(Gone, str(tmp_path / "sf3"))
    assert gone.folder is None and "not readable here" in gone.note and not (tmp_path / "sf3").exists()


def test_export_of_a_folder_dataset_run_prints_a_command_with_its_manifests(oracle_run, tmp_path, capsys):
    import shlex
    import shutil

    run = tmp_path / "run"
    shutil.copytree(oracle_run, run)
    _folder_dataset(tmp_path / "d", ["x y", "z"])
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"].update({"format": "folder", "root": str(tmp_path / "d"), "train": "train", "val": "val",
                           "num_classes": 2})
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["export", str(run), "--step", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["data_note"].startswith(f"SlowFast manifests written to {run / 'export' / 'slowfast_data'}")
    argv = shlex.split(out["train_command"])
    opts = dict(zip(argv[argv.index("--opts") + 1::2], argv[argv.index("--opts") + 2::2]))
    assert opts["DATA.PATH_TO_DATA_DIR"] == str(run / "export" / "slowfast_data")
    assert opts["DATA.PATH_LABEL_SEPARATOR"] == "|"  # " " and "," are in the paths; yacs keeps "|" a string
    assert len(_slowfast_reads(run / "export" / "slowfast_data", "|")["train"]) == 4
    assert "SlowFast manifests written to" in open(out["path"]).read()  # the file says so too


def test_flops_reads_a_slowfast_config_and_an_export_round_trips(oracle_run, tmp_path, capsys):
    cfg = {"MODEL": {"ARCH": "x3d", "NUM_CLASSES": 400}, "X3D": {"WIDTH_FACTOR": 2.0, "DEPTH_FACTOR": 2.2,
           "BOTTLENECK_FACTOR": 2.25}, "DATA": {"NUM_FRAMES": 16, "SAMPLING_RATE": 5, "TRAIN_CROP_SIZE": 224}}
    (tmp_path / "X3D_M.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["flops", "--slowfast-config", str(tmp_path / "X3D_M.yaml"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == 3794322 and abs(out["gflops"] - 4.8987) < 1e-3  # X3D-M
    assert main(["export", str(oracle_run), "--step", "2", "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert main(["flops", "--slowfast-config", exported["path"], "--json"]) == 0
    back = json.loads(capsys.readouterr().out)
    assert back["spec"] == exported["spec"] and back["params"] == exported["params"]


@pytest.mark.parametrize("text, message", [
    ("MODEL: {ARCH: slowfast}\n", "not an X3D config"),
    ("[1, 2]\n", "expected a YAML mapping"),
    ("_BASE_: X3D_S.yaml\n", "_BASE_ inheritance"),
    ("MODEL: {ARCH: x3d}\nDATA: {NUM_FRAMES: many}\n", "not a SlowFast X3D config"),
])
def test_flops_bad_slowfast_configs_exit_2(tmp_path, capsys, text, message):
    (tmp_path / "c.yaml").write_text(text)
    assert main(["flops", "--slowfast-config", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_mmaction2_export_converts_gamma_w_and_round_trips():
    from expand.interop import mmaction2_config, read_mmaction2_config, spec_from_mmaction2

    spec = get_preset("X3D-M").spec
    cfg = read_mmaction2_config(mmaction2_config(spec))
    backbone = cfg["model"]["backbone"]
    # mmaction2's own X3D-M config: gamma_w=1, gamma_b=2.25, gamma_d=2.2, X3DHead in_channels=432
    assert (backbone["gamma_w"], backbone["gamma_b"], backbone["gamma_d"]) == (1.0, 2.25, 2.2)
    assert cfg["model"]["cls_head"]["in_channels"] == 432
    assert cfg["train_dataloader"]["dataset"]["ann_file"].startswith("REQUIRED")
    assert spec_from_mmaction2(cfg) == spec
    for name in ("X3D-XS", "X3D-S", "X3D-L"):
        s = get_preset(name).spec
        assert spec_from_mmaction2(read_mmaction2_config(mmaction2_config(s))) == s


def test_mmaction2_export_reads_the_runs_manifests_as_its_video_dataset_does(tmp_path):
    """mmaction2's VideoDataset: line.strip().split(delimiter) into (filename, label), joined to
    data_prefix['video']; the config points it at the manifests export wrote, with their separator."""
    import os

    from expand.config import DataConfig
    from expand.data.manifest import load_split
    from expand.export import slowfast_data
    from expand.interop import mmaction2_config, read_mmaction2_config

    _folder_dataset(tmp_path / "d", ["play ball", "b,c"])

    class Exp:
        data = DataConfig(format="folder", root=str(tmp_path / "d"), train="train", val="val", num_classes=2)

    sf = slowfast_data(Exp, str(tmp_path / "sf"))
    cfg = read_mmaction2_config(mmaction2_config(get_preset("X3D-M").spec, data=(sf.folder, sf.prefix, sf.separator)))
    for split, loader in (("train", "train_dataloader"), ("val", "val_dataloader")):
        dataset = cfg[loader]["dataset"]
        assert dataset["ann_file"] == str(tmp_path / "sf" / f"{split}.csv") and dataset["delimiter"] == "|"
        read = []
        for line in open(dataset["ann_file"]).read().splitlines():
            filename, label = line.strip().split(dataset["delimiter"])
            read.append((os.path.join(dataset["data_prefix"]["video"], filename), int(label)))
        assert read == [(i.path, i.label) for i in load_split(Exp.data, split)]
    placeholder = read_mmaction2_config(mmaction2_config(get_preset("X3D-M").spec))
    assert placeholder["train_dataloader"]["dataset"]["delimiter"] == " "


def test_pytorchvideo_export_matches_create_x3d_arguments_and_round_trips(oracle_run, capsys):
    from expand.interop import pytorchvideo_export, spec_from_pytorchvideo

    spec = get_preset("X3D-M").spec
    exported = pytorchvideo_export(spec)
    kw = exported["create_x3d"]
    # pytorchvideo's hub x3d_m: input_clip_length=16, input_crop_size=224, depth_factor=2.2 (width 2.0, b 2.25)
    assert (kw["input_clip_length"], kw["input_crop_size"], kw["depth_factor"]) == (16, 224, 2.2)
    assert (kw["width_factor"], kw["bottleneck_factor"], kw["stem_dim_in"], kw["head_dim_out"]) == (2.0, 2.25, 12, 2048)
    assert exported["clip"]["sampling_rate"] == 5
    assert spec_from_pytorchvideo(exported) == spec
    assert main(["export", str(oracle_run), "--step", "1", "--format", "pytorchvideo", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert spec_from_pytorchvideo(json.load(open(out["path"]))).to_dict() == out["spec"]


def test_mmaction2_refuses_a_model_it_cannot_build(oracle_run, capsys):
    # the oracle's space has dim_c5=512; mmaction2's X3DHead hard-codes 2048
    assert main(["export", str(oracle_run), "--step", "1", "--format", "mmaction2"]) == 2
    assert "dim_c5" in capsys.readouterr().err


def test_a_contraction_that_lands_on_a_trained_path_model_reuses_it(oracle_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(oracle_run, run)
    basis = _path(run)[0]
    target = basis["gflops"] * 1.3  # under step 1's model: contracts back to the basis
    assert main(["contract", str(run), "--target-gflops", f"{target:.6g}", "--json"]) == 0
    item = json.loads(capsys.readouterr().out)["contractions"][0]
    assert item["reused_step"] == 0 and item["top1_frac"] == basis["top1"] and item["trial_id"] == basis["trial_id"]
    assert main(["show", str(run)]) == 0
    shown = capsys.readouterr().out
    assert "= step 0 (basis), trained" in shown and f"{100 * basis['top1']:.1f}" in shown
    assert main(["export", str(run), "--target-gflops", f"{target:.6g}"]) == 0
    assert "not trained" not in capsys.readouterr().out


def test_a_baseline_exports_a_trial_as_show_numbers_them_or_its_best_under_a_budget(tmp_path, capsys):
    import expand
    from tests.search.helpers import oracle_experiment

    run = expand.baseline(oracle_experiment(tmp_path, search={"targets": []}), "random", 3,
                          out=str(tmp_path / "b"), quiet=True)
    trials = run.trials.sort_values("trial_id").reset_index(drop=True)  # show numbers them in this order
    assert main(["export", run.folder, "--step", "2", "--format", "pytorchvideo", "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    second = trials.iloc[1]
    assert f"random baseline trial 2 ({second.trial_id})" in exported["source"]
    assert {f: exported["spec"][f] for f in ("frames", "stride", "crop", "width", "bottleneck", "depth")} == \
        {f: second[f] for f in ("frames", "stride", "crop", "width", "bottleneck", "depth")}
    assert "random_trial2_" in exported["path"] and exported["path"].endswith("_pytorchvideo.json")
    budget = float(trials.gflops.median())
    best = run.best(budget)
    assert main(["export", run.folder, "--target-gflops", str(budget), "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert f"({best.trial_id})" in exported["source"] and "the best at or under" in exported["source"]
    assert float(exported["gflops"]) <= budget

    for argv, message in ((["export", run.folder, "--step", "4"], "has trials 1..3 (as 'show' numbers them)"),
                          (["export", run.folder, "--target-gflops", "0.0001"], "trained no model at or under it"),
                          (["contract", run.folder, "--target-gflops", "0.01"],
                           "a random baseline has no expansion path to contract; 'x3d-expand export")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


def test_written_manifests_leave_out_the_videos_the_trials_skipped(tmp_path):
    """SlowFast's test loader raises on a video it cannot open after its retries: a Kinetics download's
    deleted clips, or one `data check` recorded unreadable, must not reach its manifests."""
    from expand.cli import main
    from expand.config import DataConfig
    from expand.data.synth import write_video
    from expand.export import slowfast_data
    from tests.data.conftest import counter_frames

    root = tmp_path / "d"
    (root / "train").mkdir(parents=True)
    (root / "val").mkdir()
    write_video(str(root / "train" / "a_000000_000010.mp4"), counter_frames(12), 30.0)
    write_video(str(root / "val" / "c_000000_000010.mp4"), counter_frames(12), 30.0)
    (root / "val" / "bad_000000_000010.mp4").write_bytes(b"nope" * 40)
    head = "label,youtube_id,time_start,time_end,split\n"
    (root / "train.csv").write_text(head + "x,a,0,10,train\nx,gone,0,10,train\n")
    (root / "val.csv").write_text(head + "x,c,0,10,val\nx,bad,0,10,val\n")
    exp = tmp_path / "k.yaml"
    exp.write_text(f"name: k\nsearch_space: tiny_cpu\ndata:\n  format: kinetics\n  root: {root}\n  num_classes: 1\n")

    class Exp:
        data = DataConfig(format="kinetics", root=str(root), num_classes=1)

    sf = slowfast_data(Exp, str(tmp_path / "sf"))  # before data check: the missing one is known, not the bad one
    assert "(1 train, 2 val videos" in sf.note and "; 1 missing or unreadable video(s) left out" in sf.note
    assert main(["data", "check", str(exp)]) == 0
    sf = slowfast_data(Exp, str(tmp_path / "sf"))
    assert "; 2 missing or unreadable video(s) left out" in sf.note
    read = _slowfast_reads(tmp_path / "sf", sf.separator)
    assert read["train"] == [(str(root / "train" / "a_000000_000010.mp4"), 0)]
    assert read["val"] == read["test"] == [(str(root / "val" / "c_000000_000010.mp4"), 0)]
