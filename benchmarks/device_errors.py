"""Does the search tell a broken GPU from an out-of-memory on this card and torch? (gpu_check.sh, step 4)

The search replaces a worker whose trial broke its GPU (``expand.errors.broken_device``:
every later CUDA call in that process would fail) and retries an OOM in place with a
smaller batch (``expand.device.is_out_of_memory``: the process is fine). Both rest on the
text torch puts in its errors, which changes between releases, so this checks them on the
real device. Each case runs in a process of its own, since one of them ruins it:

  assert  cross-entropy with a label out of range: on CUDA a device-side assert
  oom     one allocation far larger than the device's memory

A case passes when the search's verdict matches what the process can still do: "broken"
exactly when a small computation afterwards fails, "oom" when memory ran out and the
process still computes. On the CPU (``--device cpu``, the dry run) the same cases run and
must come out "not broken" (an IndexError; the CPU allocator's refusal). One line per
case; exit 1 if any case fails.

    python benchmarks/device_errors.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CASES = ("assert", "oom")


def _first_line(exc: BaseException | None) -> str:
    if exc is None:
        return "nothing raised"
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:120]}"


def _sync(torch, device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_case(case: str, device: str) -> dict:
    """Raise the case's error on ``device`` and report what the search concludes from it."""
    import torch

    from expand.errors import broken_device
    from expand.device import is_out_of_memory

    raised = None
    try:
        if case == "assert":
            logits = torch.zeros(2, 3, device=device)
            torch.nn.functional.cross_entropy(logits, torch.tensor([0, 7], device=device))
        else:
            size = (torch.cuda.get_device_properties(0).total_memory * 4 if device == "cuda" else 1 << 60)
            torch.empty(int(size), dtype=torch.uint8, device=device)
        _sync(torch, device)
    except Exception as exc:  # noqa: BLE001 - the error is what is measured
        raised = exc
    broken = broken_device(raised) if raised is not None else ""
    oom = raised is not None and is_out_of_memory(raised)
    try:
        if device == "cuda":
            torch.cuda.empty_cache()
        value = float((torch.ones(4, device=device) * 2).sum().item())
        computes, after = value == 8.0, ""
    except Exception as exc:  # noqa: BLE001
        computes, after = False, _first_line(exc)
    verdict = "broken" if broken else "oom" if oom else "failed" if raised is not None else "nothing"
    expected_ok = (bool(broken) == (not computes)) and raised is not None
    if case == "oom":
        expected_ok = expected_ok and oom
    return {"case": case, "device": device, "torch": torch.__version__, "raised": _first_line(raised),
            "verdict": verdict, "still_computes": computes, "after": after,
            "result": "PASS" if expected_ok else "FAIL"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # one case, in this process
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args.device)))
        return 0
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("device_errors.py: CUDA is not available here (use --device cpu)", file=sys.stderr)
            return 2
    failed = 0
    for case in CASES:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--device", args.device, "--case", case],
                              capture_output=True, text=True, timeout=300)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            print(f"{case:7s} FAIL  the case's process ended with {proc.returncode}: "
                  f"{(proc.stderr.strip().splitlines() or [''])[-1][:200]}")
            failed += 1
            continue
        r = json.loads(lines[-1])
        failed += r["result"] != "PASS"
        print(f"{case:7s} {r['result']}  raised {r['raised']!r} -> verdict {r['verdict']}; "
              f"the process {'still computes' if r['still_computes'] else 'cannot compute: ' + r['after']} "
              f"({r['device']}, torch {r['torch']})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
