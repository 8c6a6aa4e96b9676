"""LiteRT (TFLite) files of an export beside the SavedModel: file size, fidelity and CPU latency.

  python bench/litert.py --saved_model pretrained/man2woman --images data/test --size 256 [--runs 10]

For each variant (fp32, fp16, int8) writes the .tflite at --size × --size (cyclegan_tf.deploy.litert.to_tflite)
and prints a table: file size in MB, PSNR against the SavedModel's `translate` on the same images (mean
over up to --max_images images of --images, each resized to --size × --size, bicubic), and the median
latency of one image (batch 1, after two warm-up calls) of the SavedModel and of each file (LiteRT's
interpreter with XNNPACK, --threads threads, default every core), with its ratio to the SavedModel's.
Then one JSON line with the same figures. The SavedModel's size is that of its folder.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from cyclegan_tf import console

console.quiet_tensorflow()  # before TensorFlow: its start-up chatter is not for the table

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402
from timing import time_calls  # noqa: E402 - bench/timing.py

from cyclegan_tf.data.imagefiles import find_images  # noqa: E402
from cyclegan_tf.deploy.litert import VARIANTS, TFLiteTranslator, to_tflite  # noqa: E402
from cyclegan_tf.errors import UserError  # noqa: E402


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def load_images(folder: str, size: int, limit: int) -> np.ndarray:
    files = find_images(folder)[:limit]
    if not files:
        raise UserError(f"--images={folder}: no images there")
    return np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.BICUBIC), np.float32)
                     for f in files])


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--saved_model", required=True, help="an export folder of export_graph.py (fp32)")
    p.add_argument("--images", required=True, help="a folder of test images")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--max_images", type=int, default=20)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--out", default="", help="where to keep the .tflite files (default: a temporary folder)")
    args = p.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    load = os.getloadavg()[0]
    try:
        x = load_images(args.images, args.size, args.max_images)
        saved = Path(args.saved_model)
        loaded = tf.saved_model.load(str(saved))
        translate = loaded.signatures["translate"]
        want = np.concatenate([translate(images=tf.constant(x[i:i + 1]))["images"].numpy() for i in range(len(x))])
        one = tf.constant(x[:1])
        times = time_calls(lambda: translate(images=one)["images"].numpy(), args.runs)
        rows = [{"model": "SavedModel", "mb": round(folder_mb(saved), 2), "psnr_db": None,
                 "ms": 1000 * statistics.median(times)}]
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(args.out or tmp)
            out.mkdir(parents=True, exist_ok=True)
            for variant in variants:
                path = to_tflite(saved, out / f"{saved.name}_{args.size}_{variant}.tflite", variant, args.size)
                model = TFLiteTranslator(path, args.threads)
                got = model(x)
                rows.append({"model": f"tflite {variant}", "mb": round(path.stat().st_size / 1e6, 2),
                             "psnr_db": round(float(np.mean([psnr(g, w) for g, w in zip(got, want)])), 1),
                             "ms": 1000 * statistics.median(time_calls(lambda m=model: m(x[:1]), args.runs))})
    except UserError as e:
        sys.exit(f"error: {e}")
    base = rows[0]["ms"]
    for row in rows:
        row["ms"], row["ratio"] = round(row["ms"], 1), round(row["ms"] / base, 2)
    print(f"{saved} at {args.size}×{args.size}, batch 1, {len(x)} images, {args.runs} runs, "
          f"{args.threads} LiteRT threads, load {load:.2f} at start")
    print("| model | file MB | PSNR vs SavedModel (dB) | latency ms (median) | × SavedModel |")
    print("|---|---|---|---|---|")
    for r in rows:
        db = "—" if r["psnr_db"] is None else r["psnr_db"]
        print(f"| {r['model']} | {r['mb']} | {db} | {r['ms']} | {r['ratio']} |")
    print(json.dumps({
        "bench": "litert", "saved_model": str(saved), "size": args.size, "images": len(x), "runs": args.runs,
        "threads": args.threads, "rows": rows, "load_at_start": round(load, 2), "cpus": os.cpu_count(),
        "machine": platform.machine(), "tensorflow": tf.__version__,
        "ai_edge_litert": version("ai-edge-litert"), "date": datetime.date.today().isoformat()}))


if __name__ == "__main__":
    main()
