"""``presets``, ``flops`` and ``train``: one model at a time."""

from __future__ import annotations

import argparse

from expand.complexity import COUNTER, ComplexityCounter
from expand.errors import InputError, SpecError
from expand.presets import get_preset, presets
from expand.rounding import format_factor
from expand.spec import FACTORS, ArchSpec
from expand.tables import json_line, render
from expand.units import to_paper

FACTOR_FLAGS = {f: f"--{f}" for f in FACTORS}


def spec_from_args(args: argparse.Namespace, base: ArchSpec | None = None) -> ArchSpec:
    """--preset NAME, or all six factor flags (the basis constants come from ``base``)."""
    given = {f: getattr(args, f) for f in FACTORS if getattr(args, f, None) is not None}
    preset = getattr(args, "preset", None)
    if preset and given:
        flags = ", ".join(FACTOR_FLAGS[f] for f in given)
        raise InputError(f"--preset cannot be combined with {flags}")
    if preset:
        spec = get_preset(preset).spec
        if base is not None:
            spec = spec.replace(num_classes=base.num_classes)
        return spec
    missing = [FACTOR_FLAGS[f] for f in FACTORS if f not in given]
    if missing:
        raise InputError(f"give --preset NAME or all six factors; missing {', '.join(missing)}")
    try:
        return base.replace(**given) if base is not None else ArchSpec(**given)
    except SpecError as exc:  # "ArchSpec.frames: ..." names the field; the user typed --frames
        text = str(exc)
        for f in given:
            text = text.replace(f"ArchSpec.{f}:", f"{FACTOR_FLAGS[f]}:")
        raise SpecError(text) from None


def presets_cmd(args: argparse.Namespace) -> int:
    counter = ComplexityCounter()
    rows = []
    for preset in presets().values():
        s = preset.spec
        c = counter.count(s)
        paper = to_paper(s)
        rows.append({
            "name": preset.name, "frames": s.frames, "stride": s.stride, "crop": s.crop,
            "test_crop": preset.test_crop, "gamma_s": round(paper["gamma_s"], 4), "gamma_w": paper["gamma_w"],
            "width_factor": s.width, "bottleneck": s.bottleneck, "depth": s.depth, "blocks": list(s.stage_blocks),
            "gflops": c.gflops, "params": c.params, "source": preset.source, "paper": paper, "spec": s.to_dict(),
        })
    if args.json:
        print(json_line({"counter": COUNTER, "classes": 400, "presets": rows}))
        return 0
    shown = [dict(r, frames=f"{r['frames']}x{r['stride']}", gamma_s=format_factor(r["gamma_s"]),
                  gamma_w=format_factor(r["gamma_w"]), width_factor=format_factor(r["width_factor"]),
                  bottleneck=format_factor(r["bottleneck"]), depth=format_factor(r["depth"]),
                  blocks=",".join(map(str, r["blocks"])), params=r["params"] / 1e6) for r in rows]
    columns = ["name", "frames", "crop", "test_crop", "gamma_s", "gamma_w", "width_factor", "bottleneck", "depth",
               "blocks", "gflops", "params", "source"]
    print(render(shown, columns, headers=["name", "frames x stride", "crop", "test crop", "γs", "γw", "WIDTH_FACTOR",
                                          "bottleneck", "depth", "blocks", "GFLOPs", "params (M)", "source"]))
    print(f"\nGFLOPs: {COUNTER}; 400 classes. γs, γw: the paper's units (γs = crop / 112, "
          "γw = WIDTH_FACTOR / 2); γt = frames, γτ = stride, γb = bottleneck, γd = depth in both.")
    return 0


def flops_cmd(args: argparse.Namespace) -> int:
    if args.preset_name:
        if args.preset and get_preset(args.preset).name != get_preset(args.preset_name).name:
            raise InputError(f"two presets given: {args.preset_name} and --preset {args.preset}; give one")
        args.preset = args.preset_name
    if args.slowfast_config:
        from expand.export import read_slowfast_config

        if args.preset or any(getattr(args, f, None) is not None for f in FACTORS):
            raise InputError("--slowfast-config cannot be combined with --preset or factor flags")
        spec = read_slowfast_config(args.slowfast_config)
    else:
        spec = spec_from_args(args)
    spec = spec.replace(num_classes=args.classes or (spec.num_classes if args.slowfast_config else 400))
    c = ComplexityCounter().count(spec)
    if args.json:
        print(
            json_line(
                {
                    "name": spec.name,
                    "spec": spec.to_dict(),
                    "gflops": c.gflops,
                    "params": c.params,
                    "stages": [s.__dict__ for s in c.stages],
                    "counter": COUNTER,
                }
            )
        )
        return 0
    rows = [
        {
            "stage": s.stage,
            "output": f"{s.frames}x{s.height}x{s.width}",
            "channels": s.channels,
            "blocks": s.blocks or "",
            "GFLOPs": s.gflops,
            "params": s.params,
        }
        for s in c.stages
    ]
    rows.append(
        {"stage": "total", "output": "", "channels": "", "blocks": sum(spec.stage_blocks),
         "GFLOPs": c.gflops, "params": c.params}
    )
    print(spec.name)
    print(render(rows, ["stage", "output", "channels", "blocks", "GFLOPs", "params"], digits=4))
    print(f"\nGFLOPs: {COUNTER}; {spec.num_classes} classes.")
    return 0


def train_cmd(args: argparse.Namespace) -> int:
    from expand.commands.train_one import train_one

    return train_one(args, spec_from_args)
