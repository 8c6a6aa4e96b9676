"""`make demo`: the whole workflow on ShapeScapes, offline, ending with scores and a gallery.

generate ShapeScapes → build_data.py → train.py → export_graph.py → inference.py on the test split →
evaluate against the identity mapping → runs/demo/index.html. The command-line tools run as a user
runs them (subprocesses), so the demo exercises exactly the documented workflow.
"""
from __future__ import annotations

import argparse
import html
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from cyclegan_tf import atomic, evaluate
from cyclegan_tf.datasets import shapescapes

ROOT = Path(__file__).resolve().parents[1]
# Sized to finish in about 15 minutes on 2 CPU cores; a GPU gets more steps and 128 px.
CPU = dict(size=64, train=300, test=50, steps=3000, ngf=32, ndf=32)
GPU = dict(size=128, train=400, test=100, steps=20000, ngf=64, ndf=64)
REDUCED = dict(size=32, train=12, test=6, steps=4, ngf=4, ndf=4)


def _tool(script: str, *args: str) -> None:
    print(f"$ python {script} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, str(ROOT / script), *args], check=True)


def run_demo(out: Path, plan: dict, seed: int = 0) -> dict:
    start = time.time()
    data, run, exports = out / "shapescapes", out / "checkpoints", out / "pretrained"
    if out.exists():
        shutil.rmtree(out)
    counts = shapescapes.generate(data, plan["size"], plan["train"], plan["test"], seed)
    print(f"ShapeScapes {plan['size']} px: {counts}")
    _tool("build_data.py", f"--X_input_dir={data / 'trainA'}", f"--Y_input_dir={data / 'trainB'}",
          f"--X_output_file={out / 'labels.tfrecords'}", f"--Y_output_file={out / 'photos.tfrecords'}")
    _tool("train.py", f"--X={out / 'labels.tfrecords'}", f"--Y={out / 'photos.tfrecords'}", f"--checkpoint_dir={run}",
          f"--image_size={plan['size']}", f"--max_steps={plan['steps']}", f"--ngf={plan['ngf']}",
          f"--ndf={plan['ndf']}", "--log_every=100", f"--summary_every={max(plan['steps'] // 10, 1)}",
          f"--seed={seed}")
    _tool("export_graph.py", f"--checkpoint_dir={run}", "--XtoY_model=labels2photo", "--YtoX_model=photo2labels",
          f"--export_dir={exports}")
    results = out / "results"
    _tool("inference.py", f"--model={exports / 'photo2labels'}", f"--input={data / 'testB'}",
          f"--output={results / 'photo2labels'}", "--format=png")
    _tool("inference.py", f"--model={exports / 'labels2photo'}", f"--input={data / 'testA'}",
          f"--output={results / 'labels2photo'}", "--format=png")

    scores = {
        "photo2labels": evaluate.evaluate(results / "photo2labels", truth=data / "testA", labels=True),
        "photo2labels_identity": evaluate.evaluate(data / "testB", truth=data / "testA", labels=True),
        "labels2photo": evaluate.evaluate(results / "labels2photo", real=data / "trainB", truth=data / "testB"),
        "labels2photo_identity": evaluate.evaluate(data / "testA", real=data / "trainB", truth=data / "testB"),
        "plan": plan, "seconds": round(time.time() - start),
    }
    atomic.write_text(out / "scores.json", json.dumps(scores, indent=2) + "\n")
    _page(out, data, results, scores)
    for name in ("photo2labels", "photo2labels_identity", "labels2photo", "labels2photo_identity"):
        print(evaluate.table(scores[name], name))
    print(f"demo finished in {scores['seconds']} s: open {out / 'index.html'}; "
          f"tensorboard --logdir {run}")
    return scores


def _page(out: Path, data: Path, results: Path, scores: dict) -> None:
    def rows(direction: str, inputs: str, truths: str) -> str:
        cells = []
        for f in sorted((data / inputs).glob("*.png"))[:12]:
            imgs = [f"shapescapes/{inputs}/{f.name}", f"results/{direction}/{f.name}", f"shapescapes/{truths}/{f.name}"]
            cells.append("<tr>" + "".join(f"<td><img src='{html.escape(i)}'></td>" for i in imgs) + "</tr>")
        return "".join(cells)

    def score_rows(name: str, keys: tuple[str, ...]) -> str:
        model, ident = scores[name], scores[f"{name}_identity"]
        return "".join(f"<tr><td>{k}</td><td>{model[k]:.4f}</td><td>{ident[k]:.4f}</td></tr>"
                       for k in keys if k in model)

    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>cyclegan_tf demo</title>
<style>body{{font-family:sans-serif}} img{{width:128px;image-rendering:pixelated}} td,th{{padding:3px 8px}}</style>
</head><body><h1>cyclegan_tf demo: ShapeScapes labels ↔ photo</h1>
<p>Plan: {html.escape(json.dumps(scores['plan']))}; {scores['seconds']} s.
TensorBoard: <code>tensorboard --logdir {html.escape(str(out / 'checkpoints'))}</code></p>
<h2>photo → labels (F), FCN-score protocol</h2><table><tr><th>score</th><th>model</th><th>identity</th></tr>
{score_rows('photo2labels', ('pixel_accuracy', 'class_accuracy', 'class_iou'))}</table>
<h2>labels → photo (G)</h2><table><tr><th>score</th><th>model</th><th>identity</th></tr>
{score_rows('labels2photo', ('kid', 'fid', 'ssim', 'psnr'))}</table>
<p>KID/FID against the real training photos (lower is better; n = {scores['labels2photo'].get('n_generated')}).</p>
<h2>photo → labels: input | output | ground truth</h2><table>{rows('photo2labels', 'testB', 'testA')}</table>
<h2>labels → photo: input | output | ground truth</h2><table>{rows('labels2photo', 'testA', 'testB')}</table>
</body></html>
"""
    atomic.write_text(out / "index.html", page)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--reduced", action="store_true", help="tiny sizes and a few steps (the CI test)")
    p.add_argument("--steps", type=int, default=0, help="override the number of training steps")
    args = p.parse_args(argv)
    import tensorflow as tf

    plan = dict(REDUCED if args.reduced else GPU if tf.config.list_physical_devices("GPU") else CPU)
    if args.steps:
        plan["steps"] = args.steps
    run_demo(Path(args.out), plan)


if __name__ == "__main__":
    main()
