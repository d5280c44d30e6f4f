"""Training and inference throughput of X3D specs next to the machine's own limit.

For each spec: training clips/s (forward + backward + SGD step), inference
clips/s, and the achieved GFLOP/s (counted forward MACs x clips/s; training
counts 3x the forward, the usual forward+backward estimate). The reference is
a large dense Conv3d measured in the same run: the ratio says how close the
channel-wise X3D blocks run to what this device does on dense convolutions
(FLOPs are not speed for channel-wise 3D convs; SlowFast issue #286).

    python benchmarks/model_throughput.py                 # CPU, small specs
    python benchmarks/model_throughput.py --device cuda --amp --presets X3D-XS X3D-S X3D-M
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from expand.complexity import ComplexityCounter  # noqa: E402
from expand.models.x3d import build_x3d  # noqa: E402
from expand.presets import get_preset  # noqa: E402
from expand.spec import ArchSpec  # noqa: E402
from expand.device import is_out_of_memory  # noqa: E402

TINY = {
    "tiny basis 1x64": ArchSpec(1, 8, 64, dim_c5=512, num_classes=8),
    "tiny 4x64": ArchSpec(4, 2, 64, dim_c5=512, num_classes=8),
    "tiny 8x96": ArchSpec(8, 1, 96, dim_c5=512, num_classes=8),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


def time_loop(step, device: torch.device, warmup: int, min_seconds: float) -> float:
    """Seconds per call of ``step``, after ``warmup`` calls, over at least min_seconds."""
    for _ in range(warmup):
        step()
    _sync(device)
    n, start = 0, time.perf_counter()
    while True:
        step()
        n += 1
        _sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and n >= 2:
            return elapsed / n


def dense_conv_gflops(device: torch.device, amp: bool, min_seconds: float) -> float:
    """GFLOP/s (MACs) of a large dense 3x3x3 Conv3d: the device's practical peak."""
    c, t, s, b = (64, 8, 56, 4) if device.type == "cpu" else (256, 16, 56, 8)
    conv = torch.nn.Conv3d(c, c, 3, padding=1, bias=False).to(device)
    x = torch.randn(b, c, t, s, s, device=device)
    if device.type == "cuda":
        conv = conv.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    macs = b * c * t * s * s * c * 27

    def step() -> None:
        with torch.no_grad(), _autocast(device, amp):
            conv(x)

    return macs / time_loop(step, device, 2, min_seconds) / 1e9


def bench_fitting(spec: ArchSpec, device, amp, channels_last, batch, min_seconds) -> dict:
    """:func:`bench_spec` at ``batch``, halved after each CUDA OOM (a large preset at batch 16
    may not fit a smaller card): the check goes on, and the row says which batch ran."""
    while True:
        try:
            return dict(bench_spec(spec, device, amp, channels_last, batch, min_seconds), batch=batch)
        except RuntimeError as exc:  # torch.cuda.OutOfMemoryError, or cuDNN's workspace
            if batch == 1 or not is_out_of_memory(exc):
                raise
        torch.cuda.empty_cache()  # outside the except block: the failed attempt's tensors are gone
        batch //= 2


def bench_spec(spec: ArchSpec, device, amp, channels_last, batch, min_seconds) -> dict:
    gflops = ComplexityCounter().gflops(spec)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)  # this model's peak, not the largest so far
    model = build_x3d(spec).to(device)
    x = torch.randn(batch, 3, spec.frames, spec.crop, spec.crop, device=device)
    y = torch.randint(0, spec.num_classes, (batch,), device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    scaler = torch.amp.GradScaler(enabled=amp and device.type == "cuda"
                                  and not torch.cuda.is_bf16_supported())
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)  # plain, as the trainer's (train.make_optimizer)

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        with _autocast(device, amp):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    model.train()
    train_s = time_loop(train_step, device, 2, min_seconds)
    model.eval()

    def infer_step() -> None:
        with torch.no_grad(), _autocast(device, amp):
            model(x)

    infer_s = time_loop(infer_step, device, 2, min_seconds)
    mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {
        "gflops": gflops,
        "train_clips_s": batch / train_s,
        "infer_clips_s": batch / infer_s,
        "train_gflop_s": 3 * gflops * batch / train_s,
        "infer_gflop_s": gflops * batch / infer_s,
        "peak_gib": mem,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true", help="bf16/fp16 autocast on CUDA")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--presets", nargs="*", default=["X3D-XS"])
    p.add_argument("--batch", type=int, default=None, help="default 16 tiny / 4 presets on CPU")
    p.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per loop")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    specs = dict(TINY)
    specs.update({name: get_preset(name).spec for name in args.presets})
    peak = dense_conv_gflops(device, args.amp, args.seconds)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU x{torch.get_num_threads()} threads"
    print(f"device: {name}; amp={args.amp}; channels_last_3d={not args.no_channels_last}")
    print(f"dense Conv3d reference: {peak:.1f} GFLOP/s (MACs)\n")
    header = (f"{'model':18s} {'GFLOPs':>8s} {'batch':>5s} {'train clips/s':>13s} "
              f"{'infer clips/s':>13s} {'train GFLOP/s':>13s} {'vs dense':>8s} {'peak GiB':>8s}")
    print(header)
    print("-" * len(header))
    for label, spec in specs.items():
        tiny = label in TINY
        batch = args.batch or (16 if tiny or device.type == "cuda" else 4)
        r = bench_fitting(spec, device, args.amp, not args.no_channels_last, batch, args.seconds)
        print(f"{label:18s} {r['gflops']:8.4f} {r['batch']:5d} {r['train_clips_s']:13.1f} "
              f"{r['infer_clips_s']:13.1f} {r['train_gflop_s']:13.2f} "
              f"{r['train_gflop_s'] / peak:8.3f} {r['peak_gib']:8.2f}")
    print("\nGFLOPs: fvcore MACs, 1 view at the train crop; train GFLOP/s = 3 x forward x clips/s.")


if __name__ == "__main__":
    main()
