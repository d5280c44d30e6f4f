import math

import pytest
import yaml

from expand.config import load_experiment
from expand.data.synth import SynthConfig, write_dataset
from expand.search.trial import TrialSpec, call_safely
from expand.spec import ArchSpec
from expand.train import lr_at, run_trial
from tests.search.helpers import TINY


@pytest.fixture(scope="module")
def tiny_exp(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_dataset(SynthConfig(str(root), classes=2, videos_per_class=4, val_per_class=2, frames=12,
                              size=64, seed=1))

    def make(**schedule):
        data = {
            "name": "t", "search_space": TINY,
            "data": {"root": str(root), "num_classes": 2, "hflip": False, "jitter": [1.0, 1.1]},
            "schedule": {"epochs": 1, "batch_size": 4, **schedule},
            "trial": {"workers": 0, "threads": 1, "throughput_batches": 1},
        }
        path = root / f"exp{len(schedule)}{abs(hash(str(schedule)))}.yaml"
        path.write_text(yaml.safe_dump(data))
        return load_experiment(str(path))

    return make


def trial_for(exp, spec=ArchSpec(2, 2, 32, num_classes=2, dim_c5=64), seed=3):
    return TrialSpec("t1", 1, "fast", spec, seed, 0.001, 1000, exp.to_dict())


def test_trial_runs_end_to_end_and_is_deterministic(tiny_exp):
    exp = tiny_exp()
    a = run_trial(trial_for(exp))
    d = exp.to_dict()
    d["trial"]["prefetch"] = 2  # loading in a thread ahead of the step: the same batches, the same result
    b = run_trial(TrialSpec("t1", 1, "fast", trial_for(exp).spec, 3, 0.001, 1000, d))
    assert a.status == "ok", a.error
    assert 0 <= a.top1 <= 1 and a.top5 == 1.0  # 2 classes: top-5 is everything
    assert len(a.train_loss) == 1 and math.isfinite(a.val_loss)
    assert a.train_clips_per_s > 0 and a.infer_clips_per_s > 0 and a.device == "cpu"
    assert (a.top1, a.train_loss, a.val_loss) == (b.top1, b.train_loss, b.val_loss)


def test_nan_producing_setting_is_diverged(tiny_exp):
    exp = tiny_exp(base_lr=1e12, epochs=3)
    r = call_safely(run_trial, trial_for(exp))
    assert r.status == "diverged" and "non-finite loss" in r.error
    assert r.device == "cpu"  # every outcome names where it trained (show --trials), not only an ok one


def test_an_exception_is_a_failed_result_with_the_message(tiny_exp, tmp_path):
    exp = tiny_exp()
    d = exp.to_dict()
    d["data"]["root"] = str(tmp_path / "gone")
    trial = TrialSpec("t1", 1, "fast", ArchSpec(1, 2, 32, num_classes=2), 0, 0.001, 10, d)
    r = call_safely(run_trial, trial)
    assert r.status == "failed" and "manifest not found" in r.error


def test_schedule_warms_up_then_decays():
    lrs = [lr_at(s, 100, 1.0, 0.1, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and max(lrs) == pytest.approx(1.0, rel=0.01)
    assert lrs[-1] < 0.01 and lrs[50] > lrs[90]


def test_checkpoint_loads_back_with_weights_only(tiny_exp, tmp_path):
    import os

    import torch

    from expand.train import evaluate
    from expand.weights import WEIGHTS_FILE, load_weights

    exp = tiny_exp()
    d = exp.to_dict()
    d["trial"]["checkpoint"] = "all"
    trial = TrialSpec("t1", 1, "fast", ArchSpec(2, 2, 32, num_classes=2, dim_c5=64), 3, 0.001, 10, d,
                      out_dir=str(tmp_path / "t1"))
    r = run_trial(trial)
    assert r.status == "ok", r.error
    path = os.path.join(trial.out_dir, WEIGHTS_FILE)
    model = load_weights(path)
    assert not model.training
    from expand.data.dataset import ClipDataset, make_loader, prepare_split

    items, _, cache = prepare_split(exp.data, exp.search_space, "val")
    ds = ClipDataset(items, cache, exp.data, 2, 2, 32, "val", 3)
    loader = make_loader(ds, 4, False, 0, torch.device("cpu"))
    ev = evaluate(model, loader, torch.device("cpu"), torch.contiguous_format, None)
    top1, val_loss = ev.top1, ev.loss
    assert top1 == r.top1 and val_loss == pytest.approx(r.val_loss, rel=1e-5)
    # the result names the videos it got right, in the loader's order: what paired comparisons use
    from expand.search.confidence import decode_per_video

    assert decode_per_video(r.per_video).tolist() == ev.correct1
    assert decode_per_video(r.per_video, "top5").tolist() == ev.correct5
    assert r.per_video["n"] == len(items) and len(r.per_video["videos"]) == 16
    # weights_only: a pickle that would run code is refused
    torch.save({"spec": {}, "state_dict": {}, "evil": os.system}, tmp_path / "bad.pt")
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        load_weights(str(tmp_path / "bad.pt"))


def test_precise_bn_replaces_running_averages_with_the_true_average():
    """Identical batches: the precise statistics are that batch's, whatever the running average was."""
    import torch

    from expand.models.x3d import build_x3d
    from expand.spec import ArchSpec
    from expand.train import precise_bn

    torch.manual_seed(0)
    model = build_x3d(ArchSpec(2, 1, 64, num_classes=3), num_classes=3)
    batch = torch.randn(8, 3, 2, 64, 64)  # res5 sees 8 x 2 x 2 x 2 = 64 values per channel
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    ref = build_x3d(ArchSpec(2, 1, 64, num_classes=3), num_classes=3)
    ref.load_state_dict(model.state_dict())
    ref_bns = [m for m in ref.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    for m in ref_bns:
        m.momentum = 1.0  # one train-mode pass leaves exactly this batch's statistics
    ref.train()
    with torch.no_grad():
        ref(batch)
    for m in bns:
        m.running_mean.fill_(5.0)  # stale averages, far from the truth (~0.01 here)
        m.running_var.fill_(7.0)
    precise_bn(model, [batch, batch, batch], 3, torch.device("cpu"), torch.contiguous_format, None)
    for mine, theirs in zip(bns, ref_bns):
        assert torch.allclose(mine.running_mean, theirs.running_mean, atol=1e-5)
        # fvcore keeps the population variance, BN's running average the unbiased one: (n-1)/n >= 63/64
        assert torch.allclose(mine.running_var, theirs.running_var, rtol=0.02)


def test_with_a_minival_the_trial_selects_on_it_and_reports_the_validation_split(tiny_exp):
    exp = tiny_exp()
    d = exp.to_dict()
    d["data"]["minival"] = 2  # one training video per class held out
    r = run_trial(TrialSpec("t1", 1, "fast", trial_for(exp).spec, 3, 0.001, 1000, d))
    assert r.status == "ok", r.error
    assert r.extra["selected_on"] == "minival"
    assert 0 <= r.extra["val_top1"] <= 1 and r.top1 in (0.0, 0.5, 1.0)  # 2 minival videos
    plain = run_trial(trial_for(exp))
    assert plain.extra["selected_on"] == "val" and "val_top1" not in plain.extra


@pytest.mark.parametrize("amp, dtype", [("bf16", "bfloat16"), ("fp16", "float16")])
def test_amp_runs_on_cpu_and_trains(tiny_exp, amp, dtype):
    """Issue 21: the autocast path (and fp16's grad scaler) exercised without a GPU."""
    exp = tiny_exp(epochs=2)
    d = exp.to_dict()
    d["trial"]["amp"] = amp
    r = run_trial(TrialSpec("t1", 1, "fast", trial_for(exp).spec, 3, 0.001, 1000, d))
    assert r.status == "ok", r.error
    assert r.extra["amp"] == dtype
    assert all(math.isfinite(x) for x in r.train_loss) and math.isfinite(r.val_loss)
    assert r.extra["channels_last"] is (amp != "bf16")  # see memory_format_for
    assert run_trial(trial_for(exp)).extra["amp"] == "off"  # auto: AMP on CUDA only


def test_bf16_on_the_cpu_gives_finite_gradients_when_freed_memory_holds_nans():
    """CI found a bf16 trial 'diverged' on an AVX512-BF16 CPU: a channels-last kernel read stale memory.

    Freed tensors full of NaN leave NaNs where an uninitialised buffer is
    allocated next; in the layout the trainer picks, no gradient may be NaN.
    With channels-last there, 2 to 21 of 30 passes had a NaN gradient (on a
    CPU without AVX512-BF16 both layouts pass).
    """
    import torch

    from expand.models.x3d import build_x3d
    from expand.train import memory_format_for

    cpu, bf16 = torch.device("cpu"), torch.bfloat16
    assert memory_format_for(cpu, True, None) == torch.channels_last_3d
    assert memory_format_for(cpu, False, None) == torch.contiguous_format
    assert memory_format_for(torch.device("cuda"), True, bf16) == torch.channels_last_3d
    fmt = memory_format_for(cpu, True, bf16)
    torch.manual_seed(0)
    model = build_x3d(ArchSpec(2, 2, 32, num_classes=2, dim_c5=64), num_classes=2, dropout=0.0)
    model = model.to(memory_format=fmt)
    x = torch.randn(4, 3, 2, 32, 32).contiguous(memory_format=fmt)
    nan_grads = []
    for _ in range(30):
        junk = [torch.full((int(n),), math.nan) for n in torch.randint(1000, 2_000_000, (40,))]
        del junk
        with torch.autocast("cpu", dtype=bf16):
            model(x).float().sum().backward()
        nan_grads += [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
        model.zero_grad(set_to_none=True)
    assert nan_grads == []


def _count_host_reads(monkeypatch, names):
    """Count calls of these Tensor methods: each reads a value to the host, so waits for a GPU."""
    import torch

    calls = {"n": 0}
    for name in names:
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, **kw):
            calls["n"] += 1
            return _original(self, *a, **kw)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_the_training_loop_does_not_sync_every_step(tiny_exp, monkeypatch, amp):
    """Issue 21: .item(), float() or an `if` on a tensor each step would make the CPU wait for a GPU.

    (fp16's grad scaler asks .item() of its inf flag each step: see make_optimizer.)
    """
    calls = _count_host_reads(monkeypatch, ("item", "__bool__", "__float__"))

    def syncs(epochs):
        calls["n"] = 0
        exp = tiny_exp(epochs=epochs)
        d = exp.to_dict()
        d["trial"]["amp"] = amp
        r = run_trial(TrialSpec("t1", 1, "fast", trial_for(exp).spec, 3, 0.001, 1000, d))
        assert r.status == "ok", r.error
        assert r.extra["amp"] == {"off": "off", "bf16": "bfloat16"}[amp]
        return calls["n"], r.extra["steps"]

    few, few_steps = syncs(1)
    many, many_steps = syncs(5)
    assert many_steps - few_steps >= 8
    # per epoch: our one look at the summed loss, and the DataLoader's sampler drawing its seed
    # with .item(); the old loop made two per *step* (an `if` on isfinite, loss.item()): >= 16 here
    assert many - few <= (5 - 1) * 2 + 1


def test_evaluation_waits_for_the_device_once_not_per_batch(monkeypatch):
    import torch

    from expand.train import evaluate

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 2 * 4 * 4, 6))
    calls = _count_host_reads(monkeypatch, ("item", "tolist", "__bool__", "__float__"))

    def reads(batches):
        calls["n"] = 0
        loader = [(torch.randn(5, 2, 3, 2, 4, 4), torch.randint(0, 6, (5,))) for _ in range(batches)]
        ev = evaluate(model, loader, torch.device("cpu"), torch.contiguous_format, None)
        assert len(ev.correct1) == len(ev.correct5) == 5 * batches and math.isfinite(ev.loss)
        return calls["n"]

    assert reads(8) == reads(2)  # per batch, the old loop read the loss and both hit lists: 3 more each


def test_an_overflowing_first_fp16_step_is_skipped_and_leaves_the_optimizer_as_new():
    """fp16's first steps overflow as a rule; torch's fused SGD left its momentum uninitialised
    then (a state after the skip), and the next step added that memory to the weights."""
    import torch

    from expand.train import make_optimizer

    def run(scales):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
        opt = make_optimizer(model, 0.1, 0.9, 5e-5)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
        x, y = torch.randn(8, 6), torch.tensor([0, 1] * 4)
        for scale in scales:
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y) * scale
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if scale != 1.0:  # the overflow: skipped, and nothing of it kept
                assert all(not state for state in opt.state.values())
        return [p.detach().clone() for p in model.parameters()]

    # a skipped step, then two good ones: the weights of the same two good steps from the start
    # (the fused SGD's gave weights of 1e35 here, or NaN, depending on what the memory held)
    skipped, two_steps = run([float("inf"), 1.0, 1.0]), run([1.0, 1.0])
    assert all(torch.equal(a, b) for a, b in zip(skipped, two_steps))


def test_a_cuda_oom_is_an_oom_result_not_a_crash(tiny_exp, monkeypatch):
    import torch

    import expand.train as train

    class Boom(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    import weakref

    built, freed_at_empty_cache = [], []

    def build(*a, **k):
        model = Boom()
        built.append(weakref.ref(model))
        return model

    # The cached blocks go back to the driver only once the model, its gradients and the
    # optimizer are unreferenced: emptying the cache while the trial's frame still held them
    # would free nothing for a trial sharing the GPU.
    monkeypatch.setattr(train, "build_x3d", build)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: freed_at_empty_cache.append(built[0]() is None))
    r = call_safely(run_trial, trial_for(tiny_exp()))
    assert r.status == "oom" and "out of memory" in r.error and r.extra["batch_size"] == 4 and r.device == "cpu"
    assert freed_at_empty_cache == [True]


@pytest.mark.parametrize("message, status", [("cuDNN error: CUDNN_STATUS_NOT_ENOUGH_MEMORY", "oom"),
                                             ("CUDA error: an illegal memory access was encountered", "failed")])
def test_a_cudnn_memory_error_is_retried_as_oom_and_any_other_error_fails(tiny_exp, monkeypatch, message, status):
    import torch

    import expand.train as train

    class Boom(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            raise RuntimeError(message)

    monkeypatch.setattr(train, "build_x3d", lambda *a, **k: Boom())
    r = call_safely(run_trial, trial_for(tiny_exp()))
    assert r.status == status and message in r.error
    assert r.device == "cpu"  # a failed attempt too: a GPU that breaks trial after trial is seen by its name


def test_a_trial_logs_tensorboard_curves_and_hparams_and_reports_live(tiny_exp, tmp_path):
    """Event files readable with tensorboard's own reader; the live reports carry epochs and a running top-1."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from expand.search import live

    d = tiny_exp(epochs=2).to_dict()
    d["trial"]["eval_every"] = 1
    trial = TrialSpec("t1", 1, "fast", ArchSpec(2, 2, 32, num_classes=2, dim_c5=64), 3, 0.001, 10, d,
                      out_dir=str(tmp_path / "t1"))
    updates = []
    with live.reporting(updates.append):
        r = run_trial(trial)
    assert r.status == "ok", r.error
    epochs = [u for u in updates if "epoch" in u and "loss" in u]
    assert [u["epoch"] for u in epochs] == [1, 2] and all(u["epochs"] == 2 for u in epochs)
    assert "top1" in epochs[0] and 0 <= epochs[0]["top1"] <= 1  # eval_every 1: a running top-1 mid-training
    assert [u["phase"] for u in updates if "phase" in u][-1] == "evaluating"

    acc = EventAccumulator(str(tmp_path / "t1" / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "train/lr", "train/clips_per_s", "val/top1_frac", "val/top5_frac"} <= set(tags)
    losses = [e.value for e in acc.Scalars("train/loss")]
    assert losses == pytest.approx(r.train_loss, rel=1e-5)
    assert acc.Scalars("val/top1_frac")[-1].value == pytest.approx(r.top1)
    assert "hparams" in acc.PluginTagToContent("hparams") or acc.PluginTagToContent("hparams")


def test_tensorboard_off_writes_no_event_files(tiny_exp, tmp_path):
    d = tiny_exp().to_dict()
    d["trial"]["tensorboard"] = False
    trial = TrialSpec("t1", 1, "fast", ArchSpec(2, 2, 32, num_classes=2, dim_c5=64), 3, 0.001, 10, d,
                      out_dir=str(tmp_path / "t1"))
    assert run_trial(trial).status == "ok"
    assert not (tmp_path / "t1" / "tb").exists()


def _snapshot_trial(exp, out_dir, every_s, batch_scale=1.0):
    d = exp.to_dict()
    d["trial"]["snapshot_every_s"] = every_s
    return TrialSpec("t1", 1, "fast", ArchSpec(2, 2, 32, num_classes=2, dim_c5=64), 3, 0.001, 1000, d,
                     out_dir=str(out_dir), batch_scale=batch_scale)


def _curve(out_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out_dir / "tb"))
    acc.Reload()
    return [(e.step, round(e.value, 6)) for e in acc.Scalars("train/loss")]


@pytest.mark.parametrize("stop", ["mid-epoch", "after an epoch's end"])
def test_a_stopped_trial_resumes_from_its_snapshot_and_ends_as_if_never_stopped(tiny_exp, tmp_path,
                                                                                  monkeypatch, stop):
    """8 videos, batch 4: 2 steps an epoch, 6 in all. Stopped (as Ctrl-C stops it) after its
    3rd snapshot (step 3, one batch into epoch 2), or after epoch 1's end was logged (snapshot at
    step 2), the next attempt carries on and trains the very model of the uninterrupted trial."""
    import os

    from expand import train
    from expand.search import live
    from expand.snapshot import SNAPSHOT_FILE

    exp = tiny_exp(epochs=3)
    whole = run_trial(_snapshot_trial(exp, tmp_path / "whole", None))
    assert whole.status == "ok" and whole.extra["resumed_from_step"] == 0
    assert not os.path.exists(tmp_path / "whole" / SNAPSHOT_FILE)

    saves = []
    real_save = train.save_snapshot

    def save_then_maybe_stop(path, key, state, *a):
        real_save(path, key, state, *a)
        saves.append(state.step)
        if stop == "mid-epoch" and len(saves) == 3:
            raise KeyboardInterrupt

    def sink(update):
        if stop != "mid-epoch" and update.get("epoch") == 1 and "loss" in update:
            raise KeyboardInterrupt

    monkeypatch.setattr(train, "save_snapshot", save_then_maybe_stop)
    trial = _snapshot_trial(exp, tmp_path / "stopped", 1e-9)  # a snapshot after every step
    with pytest.raises(KeyboardInterrupt), live.reporting(sink):
        run_trial(trial)
    assert os.path.exists(tmp_path / "stopped" / SNAPSHOT_FILE)
    assert saves == ([1, 2, 3] if stop == "mid-epoch" else [1, 2])

    monkeypatch.setattr(train, "save_snapshot", real_save)
    resumed = run_trial(trial)
    assert resumed.status == "ok", resumed.error
    assert resumed.extra["resumed_from_step"] == saves[-1] and resumed.extra["steps"] == 6
    assert resumed.train_loss == pytest.approx(whole.train_loss, rel=1e-12, abs=0)
    assert (resumed.top1, resumed.per_video) == (whole.top1, whole.per_video)
    assert resumed.val_loss == pytest.approx(whole.val_loss, rel=1e-9)
    assert not os.path.exists(tmp_path / "stopped" / SNAPSHOT_FILE)  # final: removed
    # TensorBoard: one point per epoch, as the uninterrupted trial's (the stopped attempt's point
    # at the snapshot's step is purged, not doubled)
    assert _curve(tmp_path / "stopped") == _curve(tmp_path / "whole")


def test_a_snapshot_of_other_training_is_passed_over_and_replaced(tiny_exp, tmp_path, monkeypatch):
    """After an OOM the batch is halved: the full-batch snapshot does not fit that training."""
    import os

    from expand import train
    from expand.snapshot import SNAPSHOT_FILE

    exp = tiny_exp(epochs=2)
    trial = _snapshot_trial(exp, tmp_path / "t", 1e-9)
    real_save = train.save_snapshot

    def stop_after_first(*a):
        real_save(*a)
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "save_snapshot", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        run_trial(trial)
    monkeypatch.setattr(train, "save_snapshot", real_save)
    halved = run_trial(_snapshot_trial(exp, tmp_path / "t", 1e-9, batch_scale=0.5))
    assert halved.status == "ok" and halved.extra["batch_size"] == 2
    assert halved.extra["resumed_from_step"] == 0
    assert "other training" in halved.extra["snapshot_passed_over"]
    assert not os.path.exists(tmp_path / "t" / SNAPSHOT_FILE)
    # snapshots off: none written, none read
    off = run_trial(_snapshot_trial(exp, tmp_path / "off", None))
    assert off.status == "ok" and not os.path.exists(tmp_path / "off" / SNAPSHOT_FILE)


def test_a_trial_that_asks_for_a_gpu_it_cannot_use_fails_saying_so(tiny_exp, monkeypatch):
    import dataclasses

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    exp = tiny_exp()
    exp = dataclasses.replace(exp, resources=dataclasses.replace(exp.resources, gpus_per_trial=1.0))
    r = call_safely(run_trial, trial_for(exp))
    assert r.status == "failed" and "resources.gpus_per_trial is 1 but CUDA is not available" in r.error
