"""Kinetics as downloaded: annotation CSVs, videos flat or per class, deleted clips listed as missing."""

import json
import os

import pytest

from expand.data.kinetics import clip_name, read_kinetics_split
from expand.errors import DataError

HEADER = "label,youtube_id,time_start,time_end,split\n"


def kinetics_download(tmp_path, make_video):
    """A Kinetics-shaped download: CVDF's flat val/, a downloader's class folders in train/, a deleted clip."""
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "train.csv").write_text(
        HEADER
        + "playing guitar,gtrA,10,20,train\n"       # flat
        + '"passing American football (in game)",fbB,0,10,train\n'  # in its class folder (quoted: a comma-safe cell)
        + "abseiling,absC,100,110,train\n"          # named by YouTube id alone
        + "abseiling,goneD,5,15,train\n")           # deleted from YouTube: never downloaded
    (tmp_path / "annotations" / "validate.csv").write_text(
        HEADER + "abseiling,absV,30,40,validate\nplaying guitar,gtrV,1,11,validate\n")
    for d in ("train", "train/passing_American_football_(in_game)", "val"):
        os.makedirs(tmp_path / d, exist_ok=True)
    make_video("train/gtrA_000010_000020.mp4", n=12)
    make_video("train/passing_American_football_(in_game)/fbB_000000_000010.mp4", n=12)
    make_video("train/absC.mp4", n=12)
    make_video("val/absV_000030_000040.mp4", n=12)
    make_video("val/gtrV_000001_000011.mp4", n=12)
    (tmp_path / "train" / ".gtrA_000010_000020.mp4").write_bytes(b"macOS metadata")  # hidden: not the video


def test_clip_names_are_the_downloaders_file_names():
    assert clip_name("--07WQ2iBlw", 1, 11) == "--07WQ2iBlw_000001_000011"
    assert clip_name("abc", 296.0, 306.0) == "abc_000296_000306"  # the CSVs of some releases write floats


def test_a_download_reads_flat_per_class_and_id_named_files_and_keeps_a_deleted_clips_path(tmp_path, make_video):
    kinetics_download(tmp_path, make_video)
    items, classes = read_kinetics_split(str(tmp_path / "annotations" / "train.csv"), str(tmp_path / "train"))
    # ids: label names sorted, as SlowFast's and mmaction2's Kinetics label maps
    assert classes == ["abseiling", "passing American football (in game)", "playing guitar"]
    rel = [(os.path.relpath(i.path, tmp_path), i.label) for i in items]
    assert rel == [("train/gtrA_000010_000020.mp4", 2),
                   ("train/passing_American_football_(in_game)/fbB_000000_000010.mp4", 1),
                   ("train/absC.mp4", 0),
                   ("train/goneD_000005_000015.mp4", 0)]  # missing: data check and trials list it so
    val, _ = read_kinetics_split(str(tmp_path / "annotations" / "validate.csv"), str(tmp_path / "val"), classes)
    assert [i.label for i in val] == [0, 2]


def test_an_experiment_reads_kinetics_and_data_check_lists_the_deleted_clip(tmp_path, make_video, capsys):
    from expand.cli import main
    from expand.config import load_experiment
    from expand.data.manifest import write_label_map

    kinetics_download(tmp_path, make_video)
    exp = tmp_path / "k.yaml"
    exp.write_text(f"name: k\nsearch_space: tiny_cpu\ndata:\n  format: kinetics\n  root: {tmp_path}\n"
                   "  train: annotations/train.csv\n  val: annotations/validate.csv\n  num_classes: 3\n")
    assert main(["data", "check", str(exp), "--json"]) == 0
    splits = json.loads(capsys.readouterr().out)["splits"]
    assert (splits["train"]["readable"], splits["train"]["skipped"], splits["val"]["readable"]) == (3, 1, 2)
    skipped = [f for f in splits["train"]["files"] if not f["ok"]]
    assert [os.path.basename(f["path"]) for f in skipped] == ["goneD_000005_000015.mp4"]
    assert splits["train"]["reasons"] == {"missing file": 1}
    label_map = write_label_map(load_experiment(str(exp)).data, str(tmp_path))
    assert json.loads(open(label_map).read()) == {"abseiling": 0, "passing American football (in game)": 1,
                                                  "playing guitar": 2}


@pytest.mark.parametrize("train, val, message", [
    ("label,ytid,start,end\nx,a,0,1\n", None, "not a Kinetics annotation file: the header lacks youtube_id, "
                                              "time_start, time_end"),
    (HEADER + "x,a,zero,10,train\n", None, "train.csv:2: time_start/time_end must be numbers"),
    (HEADER + "x,a,0,10,train\ny,b,0\n", None, "train.csv:3: 3 columns, the header has 5"),
    (HEADER + ",a,0,10,train\n", None, "train.csv:2: empty label or youtube_id"),
    (HEADER, None, "annotation file has no clips"),
    (HEADER + "x,a,0,10,train\n", HEADER + "zumba,b,0,10,validate\n",
     "label(s) 'zumba' not in the training annotations"),
])
def test_bad_annotations_are_one_line_errors(tmp_path, train, val, message):
    from expand.config import DataConfig
    from expand.data.manifest import load_split

    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    (tmp_path / "train.csv").write_text(train)
    (tmp_path / "val.csv").write_text(val or train)
    data = DataConfig(format="kinetics", root=str(tmp_path), num_classes=5)
    with pytest.raises(DataError) as exc:
        load_split(data, "val" if val else "train")
    assert message in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("num_classes", [2, 400])
def test_a_label_count_other_than_num_classes_is_refused(tmp_path, num_classes):
    # 400 (the Kinetics recipe's) for a 3-label subset trained 397 logits no video has
    from expand.config import DataConfig
    from expand.data.manifest import load_split

    (tmp_path / "train").mkdir()
    (tmp_path / "train.csv").write_text(HEADER + "a,x,0,1,train\nb,y,0,1,train\nc,z,0,1,train\n")
    with pytest.raises(DataError, match=f"3 labels but num_classes is {num_classes}: the class ids come from the "
                                        r"label names, so set data.num_classes: 3 \(--set data.num_classes=3\)"):
        load_split(DataConfig(format="kinetics", root=str(tmp_path), num_classes=num_classes), "train")


def test_a_missing_video_folder_is_a_config_error_naming_its_key(tmp_path, capsys):
    from expand.cli import main

    (tmp_path / "train.csv").write_text(HEADER + "a,x,0,1,train\n")
    (tmp_path / "val.csv").write_text(HEADER + "a,y,0,1,validate\n")
    (tmp_path / "train").mkdir()
    exp = tmp_path / "k.yaml"
    exp.write_text(f"name: k\nsearch_space: tiny_cpu\ndata:\n  format: kinetics\n  root: {tmp_path}\n"
                   "  num_classes: 1\n  val_videos: validation\n")
    assert main(["search", str(exp), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "data.val_videos: video folder" in err and "validation does not exist" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_an_annotation_file_given_as_a_manifest_says_what_it_is(tmp_path, capsys):
    from expand.cli import main

    (tmp_path / "train.csv").write_text(HEADER + "a,x,0,1,train\n")
    assert main(["data", "check", str(tmp_path / "train.csv")]) == 2
    assert "a Kinetics annotation file, not a 'path label' manifest: read it with data.format: kinetics" \
        in capsys.readouterr().err


def test_data_check_lists_twenty_skips_then_counts_the_rest(tmp_path, make_video, capsys):
    """A real download misses thousands of clips: a line each buried the summary lines above them."""
    from expand.cli import main

    (tmp_path / "train").mkdir()
    make_video("train/kept_000000_000010.mp4", n=12)
    (tmp_path / "train" / "broken_000000_000010.mp4").write_bytes(b"nope" * 40)
    gone = "".join(f"a,gone{i:02d},0,10,train\n" for i in range(24))
    (tmp_path / "train.csv").write_text(HEADER + "a,kept,0,10,train\na,broken,0,10,train\n" + gone)
    exp = tmp_path / "k.yaml"
    exp.write_text(f"name: k\nsearch_space: tiny_cpu\ndata:\n  format: kinetics\n  root: {tmp_path}\n"
                   "  num_classes: 1\n  val: train.csv\n  val_videos: train\n")
    assert main(["data", "check", str(exp)]) == 0
    out = capsys.readouterr().out
    assert "train: 1 readable, 25 skipped" in out
    assert out.count("  skip ") == 20
    assert "... and 5 more skipped (25 in all: undecodable 1, missing file 24; --json lists every file)" in out


def test_the_kinetics_recipes_commented_alternative_loads(tmp_path):
    """The recipe's 'Kinetics as downloaded' lines, uncommented in place of its four CSV lines, are valid."""
    import re

    from expand.config import load_experiment
    from tests.search.helpers import ROOT

    text = open(os.path.join(ROOT, "experiments", "kinetics400_gpus.yaml")).read()
    lines = re.findall(r"^#   ((?:format|train|val|train_videos|val_videos): .*)$", text, re.M)
    assert len(lines) == 5
    swapped = re.sub(r"  format: csv\n(?:  (?:root|train|val): .*\n)+", "  root: /datasets/k400\n"
                     + "".join(f"  {line.split('#')[0].rstrip()}\n" for line in lines), text)
    exp_file = tmp_path / "k.yaml"
    exp_file.write_text(swapped.replace("../search_spaces/", os.path.join(ROOT, "search_spaces") + "/"))
    data = load_experiment(str(exp_file), check_paths=False).data
    assert (data.format, data.train, data.val, data.train_videos, data.val_videos) == \
        ("kinetics", "annotations/train.csv", "annotations/val.csv", "train", "val")


def test_data_check_on_a_kinetics_download_folder_says_to_use_an_experiment(tmp_path, make_video, capsys):
    from expand.cli import main

    kinetics_download(tmp_path, make_video)
    assert main(["data", "check", str(tmp_path)]) == 2  # it was "val: no class folders"
    err = capsys.readouterr().err
    assert f"{tmp_path}: a Kinetics download (annotations/train.csv): check it through an experiment with " \
           "data.format: kinetics" in err and err.count("\n") == 1


def test_the_frame_cache_line_names_the_experiment_to_check_for_the_deleted_clip(tmp_path, make_video):
    """A Kinetics folder alone is not what data check reads as the trials do: the experiment is."""
    from expand.config import load_experiment
    from expand.search.node_cache import CacheJob, build_here

    kinetics_download(tmp_path, make_video)
    exp = tmp_path / "k.yaml"
    exp.write_text(f"name: k\nsearch_space: tiny_cpu\ndata:\n  format: kinetics\n  root: {tmp_path}\n"
                   "  train: annotations/train.csv\n  val: annotations/validate.csv\n  num_classes: 3\n")
    line = build_here(CacheJob.of(load_experiment(str(exp))), progress=False)
    assert line.endswith(f"1 listed video(s) unreadable or missing, skipped by every trial "
                         f"('x3d-expand data check {exp}' says why)")


def test_video_folders_set_for_another_format_are_refused_not_ignored(tmp_path):
    from expand.config import load_experiment
    from expand.errors import ConfigError

    exp = tmp_path / "k.yaml"
    exp.write_text("name: k\nsearch_space: tiny_cpu\ndata:\n  format: csv\n  val_videos: validation\n")
    with pytest.raises(ConfigError, match="data.val_videos: read only with data.format: kinetics "
                                          r"\(this experiment's is csv\)"):
        load_experiment(str(exp), check_paths=False)
