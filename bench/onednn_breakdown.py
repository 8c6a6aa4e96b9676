"""Where a step's oneDNN time goes, from an `ONEDNN_VERBOSE=1` log: total ms by primitive, implementation and
propagation kind (TensorFlow and PyTorch both run oneDNN on x86 CPUs, so one reader serves both).

  ONEDNN_VERBOSE=1 python bench/train_step.py --size 128 --steps 2 --warmup 1 > ours.log
  ONEDNN_VERBOSE=1 /path/to/torch/python bench/official_reference.py --size 128 --steps 2 > official.log
  python bench/onednn_breakdown.py ours.log official.log [--steps 3]

`--steps` divides the totals by the number of steps the log holds (warm-up included), for per-step figures.
An implementation named `ref` or `gemm:ref`, or a `gemm` where `brg`/`jit` was expected, is a slow fallback.
Issue 34: docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path


def breakdown(log: Path) -> dict[tuple[str, str, str], list[float]]:
    """(primitive, implementation, propagation) → [total ms, calls]."""
    found: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    for row in csv.reader(log.read_text(errors="replace").splitlines()):
        # onednn_verbose,[v1,primitive,]exec,cpu,<primitive>,<impl>,<prop>,…,<ms> (older versions: no v1)
        if not row or not row[0].startswith(("onednn_verbose", "dnnl_verbose")) or "exec" not in row[:4]:
            continue
        i = row.index("exec")
        try:
            ms = float(row[-1])
        except ValueError:
            continue
        key = (row[i + 2], row[i + 3], row[i + 4])
        found[key][0] += ms
        found[key][1] += 1
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("logs", nargs="+", type=Path)
    p.add_argument("--steps", type=float, default=1.0, help="steps the log holds: totals are divided by it")
    args = p.parse_args()
    for log in args.logs:
        found = breakdown(log)
        total = sum(v[0] for v in found.values())
        print(f"== {log}: {total / args.steps:.1f} ms of oneDNN a step")
        for (prim, impl, prop), (ms, n) in sorted(found.items(), key=lambda kv: -kv[1][0])[:25]:
            print(f"  {ms / args.steps:9.1f} ms {ms / total:6.1%} {n / args.steps:7.1f} calls  {prim:16s} {impl:24s} "
                  f"{prop}")


if __name__ == "__main__":
    main()
