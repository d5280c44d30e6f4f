"""The default trial function: build, train the short schedule, evaluate, measure.

Every candidate of a step gets the same schedule, data order and seed, so the
only difference between two trials of a step is the architecture. A failure
is a result: an exception is ``failed``, a non-finite loss ``diverged``, memory
running out ``oom`` (memory freed first; see ``expand.device.is_out_of_memory``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

import torch
import torch.nn.functional as F

from expand.config import DataConfig, Experiment, experiment_from_dict, loader_workers
from expand.data.prefetch import Prefetcher
from expand.device import describe_device, is_out_of_memory, out_of_memory_line, pick_device
from expand.models.x3d import build_x3d
from expand.search.confidence import encode_per_video, video_ids_digest
from expand.search.nodes import node_data_root
from expand.search import live
from expand.search.trial import TrialResult, TrialSpec, attempted_on
from expand.snapshot import (SNAPSHOT_FILE, TrainState, load_snapshot, remove_snapshot, save_snapshot,
                             snapshot_key)
from expand.tboard import TrialBoard
from expand.weights import WEIGHTS_FILE, save_weights


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on BN parameters and biases (SlowFast's BN.WEIGHT_DECAY 0)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: torch.nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    """SGD with momentum, and never torch's fused SGD, though it would spare fp16 a sync per step.

    With fp16's grad scaler the fused kernel reads the inf flag on the device
    (a plain SGD makes ``GradScaler.step`` call ``.item()`` on it), but when
    it skips an overflowing *first* step it leaves the momentum buffer it
    allocated uninitialised, and the next step adds that memory to the
    weights: 6 of 10 fp16 trials on the CPU (torch 2.13) diverged by step 3,
    none with the plain SGD; LibreYOLO (PR 771) saw fp16 losses go NaN from
    it on CUDA. fp16's first steps overflow as a rule (the scale starts at
    2^16), so the sync is the price; bf16, the default on GPUs that have
    it, has no scaler and no sync.
    """
    return torch.optim.SGD(_param_groups(model, weight_decay), lr=lr, momentum=momentum)


@contextlib.contextmanager
def _batches(loader: Iterable, prefetch: int) -> Iterator[Iterable]:
    """The loader's batches, ``prefetch`` of them loaded ahead in a thread (0: none)."""
    if prefetch <= 0:
        yield loader
        return
    with Prefetcher(loader, prefetch) as batches:
        yield batches


FINITE_CHECK_EVERY = 50  # steps between looks at the summed loss (each look waits for the GPU)


def amp_dtype_for(device: torch.device, amp: str) -> Optional[torch.dtype]:
    """The autocast dtype of a trial: bf16 where it is supported, else fp16 (with a grad scaler).

    ``auto`` turns AMP on for CUDA only (CPU autocast is slower than fp32 here);
    ``bf16`` and ``fp16`` ask for it on any device, CPU included.
    """
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or device.type != "cuda" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def memory_format_for(device: torch.device, channels_last: bool,
                      amp_dtype: Optional[torch.dtype]) -> torch.memory_format:
    """``channels_last_3d`` when asked, except for bf16 autocast on the CPU.

    There (torch 2.13, a CPU with AVX512-BF16), the weight gradient of a
    channel-wise 3D convolution in bf16 and channels-last reads memory it never
    wrote: the stem's temporal conv and the 3x3x3 convs came out NaN in 2 of
    15 trials when freed memory held NaNs, so a sound trial was recorded as
    ``diverged``. The contiguous layout gave finite gradients every time, and
    CUDA runs cuDNN's kernels, not these.
    """
    if not channels_last or (device.type == "cpu" and amp_dtype == torch.bfloat16):
        return torch.contiguous_format
    return torch.channels_last_3d


def lr_at(step: int, total: int, base: float, warmup_fraction: float, start_factor: float) -> float:
    """Linear warm-up from start_factor x base, then cosine to zero."""
    warm = int(total * warmup_fraction)
    if step < warm:
        return base * (start_factor + (1 - start_factor) * step / max(warm, 1))
    progress = (step - warm) / max(total - warm, 1)
    return base * 0.5 * (1 + math.cos(math.pi * progress))


def run_trial(trial: TrialSpec) -> TrialResult:
    exp = experiment_from_dict(trial.experiment)
    data, cfg = exp.data, exp.trial
    if data.root:  # a cluster node may mount the dataset elsewhere (X3D_EXPAND_DATA_ROOT)
        data = dataclasses.replace(data, root=node_data_root(data.root))
    workers = loader_workers(cfg.workers, exp.resources.cpus_per_trial)
    device = pick_device(cfg.device, exp.resources.gpus_per_trial)
    where = describe_device(device)  # every outcome records it: a GPU that fails or runs out is named
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(trial.seed)
    start = time.perf_counter()
    board = TrialBoard.open(trial.out_dir if cfg.tensorboard else "", trial)
    if device.type == "cuda":  # a Ray worker runs trial after trial: the peak must be this trial's
        torch.cuda.reset_peak_memory_stats(device)
    oom = ""
    try:
        result = _train(trial, exp, data, workers, device, board, start)
        result.device = result.device or where
        return result
    except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is one
        if not is_out_of_memory(exc):
            raise attempted_on(exc, where)
        oom = out_of_memory_line(exc)
    except BaseException as exc:
        raise attempted_on(exc, where)
    finally:
        board.close()
    # Out of the except block, the exception, its traceback and _train's frame (model, optimizer,
    # batches) are unreferenced: collect them, then hand the cached blocks back to the driver,
    # so a trial sharing this GPU (gpus_per_trial < 1) or the next one here can have them.
    import gc

    gc.collect()
    torch.cuda.empty_cache()  # a no-op where CUDA was never initialised
    return TrialResult(trial.trial_id, "oom", error=oom, seconds=time.perf_counter() - start, device=where,
                       extra={"batch_size": max(1, int(exp.schedule.batch_size * trial.batch_scale))})


def _train(trial: TrialSpec, exp: Experiment, data: DataConfig, workers: int, device: torch.device,
           board: TrialBoard, start: float) -> TrialResult:
    """The trial's training, evaluation and measurements (run_trial turns a CUDA OOM into a result)."""
    from expand.data.dataset import ClipDataset, make_loader, prepare_split

    sched, cfg, spec = exp.schedule, exp.trial, trial.spec
    live.report(trial.trial_id, phase="opening the data")  # its cache was built before the first trial
    train_items, train_skipped, cache = prepare_split(data, exp.search_space, "train")
    val_items, val_skipped, _ = prepare_split(data, exp.search_space, "val")
    select_items, select_skipped = (prepare_split(data, exp.search_space, "minival")[:2] if data.minival
                                    else (None, []))
    # what the trial saw, for `show`: listed videos that cannot be read are skipped, not trained on
    videos = {"train": len(train_items), "val": len(val_items),
              **({"minival": len(select_items)} if select_items is not None else {}),
              "unreadable": len(train_skipped) + len(val_skipped) + len(select_skipped)}
    train_ds = ClipDataset(train_items, cache, data, spec.frames, spec.stride, spec.crop, "train", trial.seed)
    val_ds = ClipDataset(val_items, cache, data, spec.frames, spec.stride, spec.crop, "val", trial.seed)
    batch = max(1, int(sched.batch_size * trial.batch_scale))  # halved after an OOM, if asked
    lr = sched.base_lr * batch / sched.base_batch_size  # the linear scaling rule
    train_dl = make_loader(train_ds, batch, True, workers, device, trial.seed, drop_last=True)
    val_dl = make_loader(val_ds, batch, False, workers, device, trial.seed)
    model = build_x3d(spec, num_classes=data.num_classes, dropout=sched.dropout).to(device)
    amp_dtype = amp_dtype_for(device, cfg.amp)
    memory_format = memory_format_for(device, cfg.channels_last, amp_dtype)
    model = model.to(memory_format=memory_format)
    if cfg.compile:
        model = torch.compile(model)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    opt = make_optimizer(model, lr, sched.momentum, sched.weight_decay)
    steps_per_epoch = max(1, len(train_dl))
    total = sched.iterations or max(1, int(round(sched.epochs * steps_per_epoch)))
    epochs = math.ceil(total / steps_per_epoch)
    snap_path = os.path.join(trial.out_dir, SNAPSHOT_FILE) if trial.out_dir and cfg.snapshot_every_s else ""
    key = snapshot_key(trial.fingerprint(), batch, total, steps_per_epoch, amp_dtype)
    st, passed_over = load_snapshot(snap_path, key, model, opt, scaler, device) if snap_path else (None, "")
    resumed_from = st.step if st else 0
    st = st or TrainState()
    earlier_s = st.data_wait + st.compute + st.epoch_seconds  # training time the stopped attempts kept
    if resumed_from:
        board.restart_at(resumed_from)  # drop what the stopped attempt logged after its snapshot
    live.report(trial.trial_id, phase=f"training (resumed at step {resumed_from})" if resumed_from else "training",
                epoch=st.epoch, epochs=epochs)
    last_snapshot = time.perf_counter()
    while st.step < total:
        train_dl.sampler.set_epoch(st.epoch, start=st.epoch_batches * batch)  # each index carries the epoch
        model.train()
        # The loss is summed on the device and looked at only every FINITE_CHECK_EVERY steps and
        # at the epoch's end: a .item() or an `if` on a device tensor each step would make the
        # CPU wait for the GPU, and X3D's small channel-wise kernels need the CPU to run ahead.
        epoch_loss = torch.tensor(st.epoch_loss, dtype=torch.float64, device=device)
        n, epoch_wait = st.epoch_clips, st.epoch_wait
        epoch_start = time.perf_counter() - st.epoch_seconds
        step, done_in_epoch = st.step, st.epoch_batches
        t_wait = time.perf_counter()
        with _batches(train_dl, cfg.prefetch if workers == 0 else 0) as batches:
            for x, y in batches:
                t0 = time.perf_counter()
                epoch_wait += t0 - t_wait
                x = x.to(device, non_blocking=True).contiguous(memory_format=memory_format)
                y = y.to(device, non_blocking=True)
                for g in opt.param_groups:
                    g["lr"] = lr_at(step, total, lr, sched.warmup_fraction, sched.warmup_start_factor)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    loss = F.cross_entropy(model(x), y, label_smoothing=sched.label_smoothing)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if sched.grad_clip:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), sched.grad_clip)
                scaler.step(opt)
                scaler.update()
                epoch_loss += loss.detach().double() * len(y)
                n += len(y)
                st.clips += len(y)
                step += 1
                done_in_epoch += 1
                if snap_path and step < total and time.perf_counter() - last_snapshot >= cfg.snapshot_every_s:
                    summed = float(epoch_loss)  # a sync, once a snapshot is due
                    if math.isfinite(summed):  # a diverging trial gets no snapshot to resume
                        st.step, st.epoch_batches, st.epoch_loss, st.epoch_clips = step, done_in_epoch, summed, n
                        st.epoch_wait, st.epoch_seconds = epoch_wait, time.perf_counter() - epoch_start
                        save_snapshot(snap_path, key, st, model, opt, scaler, device)
                        board.flush()
                    last_snapshot = time.perf_counter()
                t_wait = time.perf_counter()
                if step % FINITE_CHECK_EVERY == 0 and not torch.isfinite(epoch_loss):
                    break
                if step >= total:
                    break
        st.step, st.epoch_batches = step, 0
        st.epoch_loss, st.epoch_clips, st.epoch_wait, st.epoch_seconds = 0.0, 0, 0.0, 0.0
        mean = float(epoch_loss) / max(n, 1)  # one sync per epoch: the loss and the timing
        st.compute += time.perf_counter() - epoch_start - epoch_wait
        st.data_wait += epoch_wait
        if not math.isfinite(mean):  # a diverged trial is still caught, within the epoch
            remove_snapshot(snap_path)
            return TrialResult(trial.trial_id, "diverged", train_loss=st.losses,
                               error=f"non-finite loss by step {step}",
                               seconds=time.perf_counter() - start)
        st.losses.append(mean)
        st.epoch += 1
        epoch_s = time.perf_counter() - epoch_start
        update = {"epoch": st.epoch, "epochs": epochs, "loss": mean, "lr": opt.param_groups[0]["lr"],
                  "clips_per_s": n / max(epoch_s, 1e-9), "data_wait_frac": epoch_wait / max(epoch_s, 1e-9)}
        if cfg.eval_every and st.epoch % cfg.eval_every == 0 and step < total:  # a running top-1, if asked
            mid = evaluate(model, val_dl, device, memory_format, amp_dtype)
            update.update(top1=mid.top1, top5=mid.top5, val_loss=mid.loss)
        board.epoch(step, update)
        live.report(trial.trial_id, **update)
    step, epoch, losses, clips, data_wait, compute = st.step, st.epoch, st.losses, st.clips, st.data_wait, st.compute
    t_eval = time.perf_counter()
    live.report(trial.trial_id, phase="evaluating")
    if cfg.precise_bn_batches:
        train_dl.sampler.set_epoch(epoch)  # fresh clips, as SlowFast draws them from the train loader
        precise_bn(model, (x for x, _ in train_dl), min(cfg.precise_bn_batches, len(train_dl)), device,
                   memory_format, amp_dtype)
    ev = evaluate(model, val_dl, device, memory_format, amp_dtype)
    reported, selected_items = {}, val_items
    if select_items is not None:  # the minival selects (top1); the validation split only reports
        reported = {"val_top1": ev.top1, "val_top5": ev.top5, "val_loss": ev.loss}
        sel_ds = ClipDataset(select_items, cache, data, spec.frames, spec.stride, spec.crop, "val", trial.seed)
        sel_dl = make_loader(sel_ds, batch, False, workers, device, trial.seed)
        ev, selected_items = evaluate(model, sel_dl, device, memory_format, amp_dtype), select_items
    top1, top5, val_loss = ev.top1, ev.top5, ev.loss
    per_video = encode_per_video(ev.correct1, ev.correct5,
                                 video_ids_digest(os.path.relpath(i.path, data.root or os.curdir) for i in selected_items))
    eval_s = time.perf_counter() - t_eval
    infer = inference_throughput(model, spec, device, memory_format, amp_dtype,
                                 batch, cfg.throughput_batches)
    if cfg.checkpoint != "none" and trial.out_dir:  # under "path" the search prunes the losers'
        save_weights(os.path.join(trial.out_dir, WEIGHTS_FILE), spec, model, sched.dropout)
    remove_snapshot(snap_path)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else math.nan
    board.finish(step, {"top1": top1, "top5": top5, "val_loss": val_loss, "infer_clips_per_s": infer,
                        **({"val_top1": reported["val_top1"]} if reported else {})})
    train_time = data_wait + compute
    return TrialResult(
        trial.trial_id, "ok", top1=top1, top5=top5, val_loss=val_loss, train_loss=losses,
        seconds=seconds, train_clips_per_s=clips / max(train_time, 1e-9), infer_clips_per_s=infer,
        peak_mem_gib=peak, device=describe_device(device), gpus=exp.resources.gpus_per_trial,
        data_wait_fraction=data_wait / max(seconds + earlier_s, 1e-9),
        extra={"resumed_from_step": resumed_from, **({"snapshot_passed_over": passed_over} if passed_over else {}),
               "data_wait_s": data_wait, "compute_s": compute, "eval_s": eval_s, "steps": step,
               "batch_size": batch, "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
               "channels_last": memory_format == torch.channels_last_3d,
               "selected_on": "minival" if select_items is not None else "val", "videos": videos,
               **reported},
        per_video=per_video,
    )


def precise_bn(model: torch.nn.Module, inputs: Iterable[torch.Tensor], batches: int, device: torch.device,
               memory_format: torch.memory_format, amp_dtype: Optional[torch.dtype]) -> None:
    """Recompute BN statistics as true averages over ``batches`` input batches (streamed, one at a time).

    During training the BN running averages trail weights that keep changing;
    recomputing them with the final weights is what SlowFast does before it
    evaluates (BN.USE_PRECISE_STATS). fvcore does the averaging and insists on
    exactly ``batches`` batches: ``inputs`` must hold at least that many.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fvcore.nn.precise_bn import update_bn_stats

    on_device = (x.to(device, non_blocking=True).contiguous(memory_format=memory_format) for x in inputs)
    model.train()
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        update_bn_stats(model, on_device, num_iters=batches)


@dataclass
class Evaluation:
    """Top-1/top-5/loss of a split, and per video (in loader order) whether top-1 and top-5 were right."""

    top1: float
    top5: float
    loss: float
    correct1: list[bool]
    correct5: list[bool]


@torch.no_grad()
def evaluate(model, loader, device, memory_format, amp_dtype) -> Evaluation:
    """Multi-view batches (B x V x C x T x H x W) average softmax over a video's views.

    Sums and hits stay on the device until the end, as in training: one wait for the GPU per
    evaluation, not one per batch.
    """
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    hits1: list[torch.Tensor] = []
    hits5: list[torch.Tensor] = []
    for x, y in loader:
        y = y.to(device, non_blocking=True)
        b, v = x.shape[:2]
        x = x.flatten(0, 1).to(device, non_blocking=True).contiguous(memory_format=memory_format)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(x).float()
        probs = logits.softmax(-1).view(b, v, -1).mean(1)
        loss_sum += F.nll_loss(probs.clamp_min(1e-8).log(), y, reduction="sum").double()
        k = min(5, probs.shape[-1])
        top = probs.topk(k, -1).indices
        hits1.append(top[:, 0] == y)
        hits5.append((top == y[:, None]).any(-1))
    correct1: list[bool] = torch.cat(hits1).tolist() if hits1 else []
    correct5: list[bool] = torch.cat(hits5).tolist() if hits5 else []
    total = max(len(correct1), 1)
    return Evaluation(sum(correct1) / total, sum(correct5) / total, float(loss_sum) / total, correct1, correct5)


@torch.no_grad()
def inference_throughput(model, spec, device, memory_format, amp_dtype, batch: int, batches: int) -> float:
    """Clips/s of a short timed inference loop on the trial's device (FLOPs are not speed)."""
    if batches <= 0:
        return math.nan
    model.eval()
    x = torch.randn(batch, 3, spec.frames, spec.crop, spec.crop, device=device).contiguous(memory_format=memory_format)
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(batches):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return batch * batches / (time.perf_counter() - t)
