"""The health monitors on runs made to fail, and on healthy ones: does each fire where it should, and only there?

  python bench/health_runs.py --out /tmp/health [--steps 1500] [--size 32] [--cases healthy,d_lr_x20,...]
  python bench/health_runs.py --out /tmp/health --cases tiny --picture docs/health.png   # the README's picture

CycleGAN on ShapeScapes (labels ↔ photos, unpaired; the demo's data at a small size), one train.py run per case,
evaluating the held-out test split six times. The cases and how each provokes its failure:

  healthy       the defaults (transposed-conv upsampling)
  resize        the defaults with --upsample resize: the checkerboard monitor's control
  d_lr_x20      --D_learning_rate 20 × --learning_rate: D wins (d_dominance)
  g_slow        G at a hundredth of the learning rate, D at the usual one: D wins (d_dominance)
  tiny          4 images per domain: D memorises, G collapses (collapse, d_dominance, stalled)
  inverted      photos → their colour inversions (255 − photo), no identity loss (inversion)
  lr_x50        --learning_rate 50 ×: the run degrades after its first gains (diverging, saturation)
  pix2pix_inverted  pix2pix on pairs (photo, its inversion): a G that inverts, quickly (inversion)
  same_domain   X and Y both photos: returning the input is right here; identity's control
  identity_heavy  the identity loss ×10 (--lambda_identity 5): G keeps returning its input (identity)
  d_frozen      D does not learn (--D_learning_rate 1e-9): only the cycle and identity terms teach G (identity)
  pix2pix_one_target  pix2pix whose every target is one photo: one output for all inputs (collapse)
  no_cycle      no cycle or identity loss: nothing ties an output to its input (collapse)
  lr_x25_long   --learning_rate 25 ×, evaluated 15 times: a score that stops improving (stalled, diverging)

Prints, per case, each monitor's values at the evaluations and whether it fired (from RUN/health.jsonl), and
the health lines of the log (d_dominance: min, median, max over the logs of the smallest D loss). Results:
docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cyclegan_tf.data import shapescapes  # noqa: E402

CASES = {
    "healthy": [],
    "resize": ["--upsample=resize"],
    "d_lr_x20": ["--D_learning_rate=4e-3"],
    "g_slow": ["--learning_rate=2e-6", "--D_learning_rate=2e-4"],
    "tiny": [],
    "inverted": ["--lambda_identity=0"],
    "lr_x50": ["--learning_rate=1e-2"],
    "pix2pix_inverted": ["--model=pix2pix", "--netG=resnet_6blocks"],
    "same_domain": [],
    "identity_heavy": ["--lambda_identity=5"],
    "d_frozen": ["--D_learning_rate=1e-9"],
    "pix2pix_one_target": ["--model=pix2pix", "--netG=resnet_6blocks"],
    "no_cycle": ["--lambda1=0", "--lambda2=0", "--lambda_identity=0"],
    "lr_x25_long": ["--learning_rate=5e-3"],
}
EVALUATIONS = {"lr_x25_long": 15}  # evaluations per run (default 6)
PAIRED = {"pix2pix_inverted", "pix2pix_one_target"}


def _tool(script: str, *args: str, log: Path | None = None) -> str:
    done = subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{script} failed:\n{done.stderr[-2000:]}")
    if log:
        log.write_text(done.stdout + done.stderr)
    return done.stdout + done.stderr


def _invert(src: Path, dst: Path, files: list[Path]) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in files:
        Image.fromarray(255 - np.asarray(Image.open(f).convert("RGB"))).save(dst / f.name)
    return dst


def _copy(dst: Path, files: list[Path]) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in files:
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def data(out: Path, size: int) -> dict[str, tuple[Path, Path, Path, Path]]:
    """case → (X folder, Y folder, held-out X, held-out Y)."""
    shapes = out / "shapescapes"
    if not shapes.exists():
        shapescapes.generate(shapes, size, train=300, test=32, seed=0)
    a, b = sorted((shapes / "trainA").glob("*.png")), sorted((shapes / "trainB").glob("*.png"))
    tb = sorted((shapes / "testB").glob("*.png"))
    normal = (shapes / "trainA", shapes / "trainB", shapes / "testA", shapes / "testB")
    sets = {k: normal for k in CASES}
    if not (out / "tinyA").exists():
        _copy(out / "tinyA", a[:4]), _copy(out / "tinyB", b[:4])
        _copy(out / "photosX", b[:150]), _invert(shapes, out / "invertedY", b[150:])
        _invert(shapes, out / "test_invertedY", tb)
    if not (out / "photosY").exists():
        _copy(out / "photosY", b[150:])
    if not (out / "pairsA").exists():
        _copy(out / "pairsA", b), _invert(shapes, out / "pairsB", b)
    if not (out / "one_targetB").exists():
        (out / "one_targetB").mkdir()
        for f in b:
            (out / "one_targetB" / f.name).write_bytes(b[0].read_bytes())
    sets["tiny"] = (out / "tinyA", out / "tinyB", normal[2], normal[3])
    sets["inverted"] = (out / "photosX", out / "invertedY", shapes / "testB", out / "test_invertedY")
    sets["same_domain"] = (out / "photosX", out / "photosY", shapes / "testB", out / "photosY")  # Y: other photos
    sets["pix2pix_inverted"] = (out / "pairsA", out / "pairsB", shapes / "testB", out / "test_invertedY")
    sets["pix2pix_one_target"] = (out / "pairsA", out / "one_targetB", shapes / "testB", out / "test_invertedY")
    return sets


def run_case(out: Path, name: str, folders: tuple[Path, ...], steps: int, size: int) -> Path:
    x, y = out / f"{name}_X.tfrecords", out / f"{name}_Y.tfrecords"
    if name in PAIRED:
        held = out / f"{name}_test.tfrecords"
        if not x.exists():
            _tool("build_data.py", "--paired", f"--X_input_dir={folders[0]}", f"--Y_input_dir={folders[1]}",
                  f"--output_file={x}")
            _tool("build_data.py", "--paired", f"--X_input_dir={folders[2]}", f"--Y_input_dir={folders[3]}",
                  f"--output_file={held}", "--seed=-1")
        data, folders = [f"--X={x}"], (*folders[:2], held, "")
    else:
        if not x.exists():
            _tool("build_data.py", f"--X_input_dir={folders[0]}", f"--Y_input_dir={folders[1]}",
                  f"--X_output_file={x}", f"--Y_output_file={y}")
        data = [f"--X={x}", f"--Y={y}"]
    run = out / f"run_{name}"
    _tool("train.py", *data, f"--checkpoint_dir={run}", f"--image_size={size}",
          f"--load_size={round(size * 286 / 256)}", "--netG=resnet_6blocks", "--ngf=16", "--ndf=16",
          f"--max_steps={steps}", f"--eval_every={steps // EVALUATIONS.get(name, 6)}", f"--eval_X={folders[2]}",
          *([f"--eval_Y={folders[3]}"] if folders[3] else []),
          f"--log_every={max(steps // 30, 1)}", f"--summary_every={steps // 6}", "--save_every=100000",
          *CASES[name], log=out / f"{name}.log")
    return run


def _d_losses(run: Path) -> tuple[list[float], list[int]]:
    """health/d_dominance at every log, recomputed from the loss/D… scalars with the run's model's groups (so
    that runs made before a change of the monitor read alike), and the steps where its window fired."""
    import tensorflow as tf

    from cyclegan_tf import models
    from cyclegan_tf.evaluation import health

    model = models.get(json.loads((run / "flags.json").read_text()).get("model", models.DEFAULT))
    losses: dict[int, dict[str, float]] = {}
    for f in sorted(run.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(f)):
            for v in event.summary.value:
                if v.tag.startswith("loss/D"):
                    losses.setdefault(event.step, {})[v.tag[5:]] = float(tf.make_ndarray(v.tensor))
    values = [health.d_dominance(losses[step], model.discriminator_losses) for step in sorted(losses)]
    monitor, fired, at = health.MONITORS["d_dominance"], False, []
    for i, step in enumerate(sorted(losses)):
        worst = max(values[max(0, i - 4):i + 1]) if i >= 4 else float("inf")
        fired = not monitor.clears(worst) if fired else monitor.fires(worst)
        if fired:
            at.append(step)
    return values, at


def _diverging(run: Path) -> dict:
    """diverging at each evaluation, replayed from eval/scores.jsonl with the monitor as it is now."""
    from cyclegan_tf.evaluation import during_training, health

    metric = json.loads((run / "eval" / "best.json").read_text())["metric"]
    history = during_training.read_history(run / "eval")
    series, values, at, fired = [], [], [], False
    for step in sorted(history):
        v = history[step]["scores"].get(metric)
        series.append(float("nan") if v is None else v)
        values.append(health.diverging(series, during_training.lower_is_better(metric)))
        monitor = health.MONITORS["diverging"]
        fired = not monitor.clears(values[-1]) if fired else monitor.fires(values[-1])
        at += [step] if fired else []
    return {"values": values, "fired_at": at}


def summary(run: Path, log: Path) -> dict:
    rows = [json.loads(line) for line in (run / "health.jsonl").read_text().splitlines()]
    d, at = _d_losses(run)
    table: dict[str, dict] = {"d_dominance": {"values": [min(d), float(np.median(d)), max(d)] if d else [],
                                              "fired_at": at[:1] + ([f"… {at[-1]} ({len(at)} logs)"] if at else [])}}
    for r in rows:
        key = r["monitor"] + (f"_{r['direction']}" if r.get("direction") else "")
        t = table.setdefault(key, {"values": [], "fired_at": []})
        if r["monitor"] == "d_dominance":
            continue
        t["values"].append(r["value"])
        if r["fired"] and (not t["fired_at"] or t["fired_at"][-1] != r["step"]):
            t["fired_at"].append(r["step"])
    table["diverging"] = _diverging(run)
    lines = [line for line in log.read_text().splitlines() if "health:" in line]
    return {"monitors": table, "lines": lines}


def picture(run: Path, out: Path) -> None:
    """The run report's Health panel, drawn by headless Chromium, cropped to its content: the README's picture."""
    import os
    import shutil
    import tempfile

    from cyclegan_tf.evaluation import report

    browser = next((b for b in map(shutil.which, ("chromium", "chromium-browser")) if b), None)
    if browser is None:
        sys.exit("--picture needs chromium on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        page, shot = Path(tmp) / "health.html", Path(tmp) / "shot.png"
        page.write_text(f'<!DOCTYPE html><html><head><meta charset="utf-8"><style>{report.STYLE}</style></head>'
                        f"<body><main>{report._health_panel(run)}</main></body></html>")
        command = [browser, "--headless", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                   f"--user-data-dir={Path(tmp) / 'profile'}", f"--screenshot={shot}", "--window-size=1100,900",
                   "--force-device-scale-factor=1", page.as_uri()]
        if os.geteuid() == 0:
            command.insert(1, "--no-sandbox")
        subprocess.run(command, capture_output=True, timeout=120, check=True)
        image = np.asarray(Image.open(shot).convert("RGB"))
    ink = np.argwhere((image < 245).any(-1))
    (top, left), (bottom, right) = ink.min(0), ink.max(0)
    Image.fromarray(image[max(top - 12, 0):bottom + 12, max(left - 12, 0):right + 12]).save(out, optimize=True)
    print(f"wrote {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--summarize", action="store_true", help="summarise the runs already in --out, training none")
    p.add_argument("--picture", type=Path, help="only draw the Health panel of --out/run_<first case> to this PNG")
    args = p.parse_args()
    if args.picture:
        return picture(args.out / f"run_{args.cases.split(',')[0]}", args.picture)
    args.out.mkdir(parents=True, exist_ok=True)
    sets = data(args.out, args.size)
    for name in args.cases.split(","):
        run = args.out / f"run_{name}" if args.summarize else run_case(args.out, name, sets[name], args.steps,
                                                                          args.size)
        result = summary(run, args.out / f"{name}.log")
        (args.out / f"{name}.json").write_text(json.dumps(result, indent=1))
        print(f"== {name}")
        for key, t in sorted(result["monitors"].items()):
            vals = ", ".join("–" if v is None else f"{v:.3g}" for v in t["values"])
            print(f"  {key:22s} {vals}   fired at {t['fired_at'] or 'never'}")
        print("\n".join("  " + line for line in result["lines"]), flush=True)


if __name__ == "__main__":
    main()
