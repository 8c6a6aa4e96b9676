"""`make demo`: the whole workflow on ShapeScapes, offline, ending with scores and a gallery.

generate ShapeScapes → build_data.py → train.py → export_graph.py → inference.py on the test split →
evaluate against the identity mapping → runs/demo/index.html. The command-line tools run as a user
runs them (subprocesses), so the demo exercises exactly the documented workflow.

`--models pix2pix` (or `cycle_gan,pix2pix`) trains pix2pix instead (as well) on *paired* ShapeScapes of
the same seed, one run per direction with the same generator and steps, and scores it on the same test
split: the paper's paired upper bound next to CycleGAN.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # `make demo`: its first lines must not be TensorFlow's start-up chatter
    from cyclegan_tf import console

    console.quiet_tensorflow()

from cyclegan_tf import atomic, models  # noqa: E402
from cyclegan_tf.data import shapescapes  # noqa: E402
from cyclegan_tf.evaluation import score  # noqa: E402
from cyclegan_tf.options import PRECISIONS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Sized for a short run on 2 CPU cores (docs/benchmarks.md has the time); a GPU gets more steps and 128 px.
CPU = dict(size=64, train=300, test=50, steps=3000, ngf=32, ndf=32)
GPU = dict(size=128, train=400, test=100, steps=20000, ngf=64, ndf=64)
REDUCED = dict(size=32, train=12, test=6, steps=4, ngf=4, ndf=4, evaluations=1)


def prefix(model: str) -> str:
    """Of a model's exports, result folders and score keys: none for the default model."""
    return "" if model == models.DEFAULT else f"{model}_"


def _tool(script: str, *args: str) -> float:
    """Runs a tool as a user does; returns its peak resident memory in MB."""
    print(f"$ python {script} {' '.join(args)}", flush=True)
    child = subprocess.Popen([sys.executable, str(ROOT / script), *args])
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS, not the maximum over all children
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, child.args)
    return usage.ru_maxrss / 1024


def _seconds_per_step(run: Path) -> float:
    """The median of the run's logged training speed (start-up and tracing excluded)."""
    import tensorflow as tf

    rates = [float(tf.make_ndarray(v.tensor)) for f in sorted(run.glob("events.out.tfevents.*"))
             for e in tf.compat.v1.train.summary_iterator(str(f)) for v in e.summary.value
             if v.tag == "perf/steps_per_sec"]
    return 1.0 / statistics.median(rates) if rates else float("nan")


def _train_args(plan: dict, seed: int, steps: int | None = None) -> list[str]:
    steps = steps or plan["steps"]
    return [f"--image_size={plan['size']}", f"--max_steps={steps}", f"--ngf={plan['ngf']}",
            f"--ndf={plan['ndf']}", f"--log_every={min(100, max(steps // 10, 1))}",
            f"--summary_every={max(steps // 10, 1)}", f"--seed={plan.get('train_seed', seed)}",
            f"--precision={plan.get('precision', 'fp32')}",
            # every model at the same data size (pix2pixHD's own default scales images to 1024 px wide)
            "--preprocess=resize_and_crop", f"--load_size={round(plan['size'] * 286 / 256)}"]


def _eval_args(plan: dict, steps: int, **sets: Path | str) -> list[str]:
    """Evaluation during training on the test split (four times a run unless the plan says otherwise)."""
    return [f"--eval_every={max(steps // plan.get('evaluations', 4), 1)}", *(f"--{k}={v}" for k, v in sets.items())]


def _palette() -> str:
    return ";".join(",".join(str(int(v)) for v in c) for c in shapescapes.PALETTE)


def _label_flags(cls: type) -> list[str]:
    """A model that can take label maps (--label_nc) gets ShapeScapes' as one-hot classes: its palette."""
    if "label_nc" not in {o.name for o in cls.options}:
        return []
    return [f"--label_nc={len(shapescapes.PALETTE)}", f"--palette={_palette()}"]


def _budgeted(train: list[str], run: Path, plan: dict) -> list[str]:
    """With plan["minutes"]: the steps that fill that wall-clock time, from a short probe run of the same
    command (its median s/step), so that every model gets the same time rather than the same steps."""
    if not plan.get("minutes"):
        return train
    probe = run.with_name(run.name + "_probe")
    _tool("train.py", *train, "--max_steps=12", "--log_every=2", "--summary_every=1000", "--eval_every=0",
          f"--checkpoint_dir={probe}")
    steps = max(10, int(plan["minutes"] * 60 / _seconds_per_step(probe)))
    shutil.rmtree(probe)  # written by the probe above
    evaluations = plan.get("evaluations", 4)
    evaluation = [f"--eval_every={max(steps // evaluations, 1)}"] if any(a.startswith("--eval_every=") for a in train) \
        else []
    return [*train, f"--max_steps={steps}", f"--log_every={min(100, max(steps // 10, 1))}",
            f"--summary_every={max(steps // 10, 1)}", *evaluation]


DIRECTIONS = (("photo2labels", "BtoA", "testB"), ("labels2photo", "AtoB", "testA"))  # name, pair direction, inputs
ALL = tuple(d[0] for d in DIRECTIONS)


COSTS: dict[str, list[dict]] = {}  # model → the cost of each of its training runs


def _train_export_translate(out: Path, data: Path, run: Path, train: list[str], exports: dict,
                            plan: dict) -> None:
    train = _budgeted(train, run, plan)
    peak = _tool("train.py", *train, f"--checkpoint_dir={run}")
    model = next(a.removeprefix("--model=") for a in train if a.startswith("--model="))
    steps = int(next(a for a in reversed(train) if a.startswith("--max_steps=")).split("=")[1])
    COSTS.setdefault(model, []).append({"seconds_per_step": _seconds_per_step(run), "peak_memory_mb": peak,
                                        "steps": steps})
    from cyclegan_tf.evaluation import report  # here: matplotlib is not for --help

    report.write_report(run)
    _tool("export_graph.py", f"--checkpoint_dir={run}", *(f"--{d}_model={n}" for d, n in exports.items()),
          f"--export_dir={out / 'pretrained'}")
    for export_name in filter(None, exports.values()):
        inputs = next(i for n, _, i in DIRECTIONS if export_name.endswith(n))
        _tool("inference.py", f"--model={out / 'pretrained' / export_name}", f"--input={data / inputs}",
              f"--output={out / 'results' / export_name}", "--format=png")


def _train_model(out: Path, data: Path, plan: dict, seed: int, model: str) -> None:
    """Trains `model` as it reads its data: pairs (one run per direction), or both unpaired domains (one
    run for a two-generator model, else one per direction), with the same steps and sizes for all."""
    cls, p = models.get(model), prefix(model)
    args = [f"--model={model}", *_train_args(plan, seed), *cls.demo_flags]
    directions = [d for d in DIRECTIONS if d[0] in plan.get("directions", ALL)]
    if cls.paired:
        paired = out / "shapescapes_paired"
        if not paired.exists():
            shapescapes.generate(paired, plan["size"], plan["train"], plan["test"], seed, paired=True)
            _tool("build_data.py", "--paired", f"--X_input_dir={paired / 'trainA'}",
                  f"--Y_input_dir={paired / 'trainB'}", f"--output_file={out / 'pairs.tfrecords'}")
            _tool("build_data.py", "--paired", f"--X_input_dir={data / 'testA'}", f"--Y_input_dir={data / 'testB'}",
                  f"--output_file={out / 'test_pairs.tfrecords'}", "--seed=-1")
        if cls.defaults.get("netG", "").startswith("unet"):
            # CycleGAN's generator where the U-Nets do not fit (they need sides divisible by 128 or 256)
            args.append("--netG=" + next((f"unet_{n}" for n in (256, 128) if plan["size"] % n == 0), "resnet_6blocks"))
        for name, direction, _ in directions:
            labels = _label_flags(cls) if direction == "AtoB" else []
            targets_are_labels = {"eval_labels_Y": _palette()} if direction == "BtoA" else {}
            evaluation = _eval_args(plan, plan["steps"], eval_X=out / "test_pairs.tfrecords", **targets_are_labels)
            _train_export_translate(out, data, out / f"checkpoints_{p}{name}",
                                    [*args, f"--X={out / 'pairs.tfrecords'}", f"--direction={direction}", *labels,
                                     *evaluation], {"XtoY": p + name, "YtoX": ""}, plan)
        return
    # every unpaired model with CycleGAN's generator for this size (CUT's default is always 9 blocks)
    from cyclegan_tf.networks import default_netG  # here: loading Keras is not for --help

    args.append(f"--netG={default_netG(plan['size'])}")
    labels, photos = out / "labels.tfrecords", out / "photos.tfrecords"
    if not labels.exists():
        _tool("build_data.py", f"--X_input_dir={data / 'trainA'}", f"--Y_input_dir={data / 'trainB'}",
              f"--X_output_file={labels}", f"--Y_output_file={photos}")
    if {"XtoY", "YtoX"} <= set(cls.exports):
        names = {"XtoY": p + "labels2photo", "YtoX": p + "photo2labels"}
        evaluation = _eval_args(plan, plan["steps"], eval_X=data / "testA", eval_Y=data / "testB",
                                eval_truth_Y=data / "testB", eval_truth_X=data / "testA", eval_labels_X=_palette())
        _train_export_translate(out, data, out / f"checkpoints{'_' + model if p else ''}",
                                [*args, f"--X={labels}", f"--Y={photos}", *evaluation],
                                {d: n if n.removeprefix(p) in plan.get("directions", ALL) else ""
                                 for d, n in names.items()}, plan)
        return
    for name, direction, _ in directions:
        x, y = (labels, photos) if direction == "AtoB" else (photos, labels)
        tx, ty = ("testA", "testB") if direction == "AtoB" else ("testB", "testA")
        labels_y = {"eval_labels_Y": _palette()} if direction == "BtoA" else {}
        evaluation = _eval_args(plan, plan["steps"], eval_X=data / tx, eval_Y=data / ty, eval_truth_Y=data / ty,
                                **labels_y)
        _train_export_translate(out, data, out / f"checkpoints_{p}{name}",
                                [*args, f"--X={x}", f"--Y={y}", *evaluation], {"XtoY": p + name, "YtoX": ""}, plan)


def run_demo(out: Path, plan: dict, seed: int = 0, model_names: tuple[str, ...] = (models.DEFAULT,)) -> dict:
    start = time.time()
    data, results = out / "shapescapes", out / "results"  # `data` is unpaired; its test split is paired
    if out.exists():
        shutil.rmtree(out)
    COSTS.clear()
    counts = shapescapes.generate(data, plan["size"], plan["train"], plan["test"], seed)
    print(f"ShapeScapes {plan['size']} px: {counts}")
    for model in model_names:
        _train_model(out, data, plan, seed, model)

    scores: dict = {}
    for name, inputs, kw in (("photo2labels", "testB", dict(truth=data / "testA", labels=True)),
                             ("labels2photo", "testA", dict(real=data / "trainB", truth=data / "testB"))):
        if name not in plan.get("directions", ALL):
            continue
        for m in model_names:
            scores[prefix(m) + name] = score.evaluate(results / (prefix(m) + name), **kw)
        scores[f"{name}_identity"] = score.evaluate(data / inputs, **kw)
        columns = {m: scores[prefix(m) + name] for m in model_names} | {"identity": scores[f"{name}_identity"]}
        print(score.comparison(columns, name))
    scores["cost"] = {m: {k: round(statistics.mean(c[k] for c in COSTS.get(m, [])), 4)
                          for k in ("seconds_per_step", "peak_memory_mb", "steps")} for m in model_names}
    scores |= {"plan": plan, "models": list(model_names), "seconds": round(time.time() - start)}
    atomic.write_text(out / "scores.json", json.dumps(scores, indent=2) + "\n")
    _page(out, scores, model_names)
    print(f"demo finished in {scores['seconds']} s: open {out / 'index.html'}; "
          f"tensorboard --logdir {out}")
    return scores


def _page(out: Path, scores: dict, model_names: tuple[str, ...]) -> None:
    def gallery(name: str, inputs: str, truths: str) -> str:
        head = "<tr><th>input</th>" + "".join(f"<th>{m}</th>" for m in model_names) + "<th>ground truth</th></tr>"
        cells = []
        for f in sorted((out / "shapescapes" / inputs).glob("*.png"))[:12]:
            imgs = [f"shapescapes/{inputs}/{f.name}", *(f"results/{prefix(m)}{name}/{f.name}" for m in model_names),
                    f"shapescapes/{truths}/{f.name}"]
            cells.append("<tr>" + "".join(f"<td><img src='{html.escape(i)}'></td>" for i in imgs) + "</tr>")
        return head + "".join(cells)

    def score_table(name: str, keys: tuple[str, ...]) -> str:
        cols = [scores[prefix(m) + name] for m in model_names] + [scores[f"{name}_identity"]]
        head = "<tr><th>score</th>" + "".join(f"<th>{m}</th>" for m in model_names) + "<th>identity</th></tr>"
        return head + "".join("<tr><td>" + k + "</td>" + "".join(f"<td>{c[k]:.4f}</td>" for c in cols) + "</tr>"
                              for k in keys if k in cols[0])

    def how(m: str) -> str:
        cls = models.get(m)
        if cls.paired:
            return "trained on pairs (its upper bound), one run per direction"
        if {"XtoY", "YtoX"} <= set(cls.exports):
            return "unpaired, one run learns both directions"
        return "unpaired and one-sided: each direction is a run of its own"

    cost = "".join(f"<tr><td>{m}</td><td>{html.escape(how(m))}</td><td>{scores['cost'][m]['steps']:.0f}</td>"
                   f"<td>{scores['cost'][m]['seconds_per_step']:.4f}</td>"
                   f"<td>{scores['cost'][m]['peak_memory_mb']:.0f}</td></tr>" for m in model_names)
    plan = "".join(f"<li>{html.escape(str(k))}: {html.escape(', '.join(v) if isinstance(v, (list, tuple)) else str(v))}"
                   "</li>" for k, v in scores["plan"].items())
    budget = (f"the same wall-clock time ({scores['plan']['minutes']} min) for every run"
              if scores["plan"].get("minutes") else "the same steps for every model")
    sections = ""
    if "photo2labels" in scores["plan"].get("directions", ALL):
        sections += f"""<h2>photo → labels, FCN-score protocol (higher is better)</h2>
<table>{score_table('photo2labels', ('pixel_accuracy', 'class_accuracy', 'class_iou'))}</table>\n"""
    if "labels2photo" in scores["plan"].get("directions", ALL):
        table = score_table('labels2photo', ('kid', 'fid', 'ssim', 'psnr'))
        sections += f"""<h2>labels → photo</h2><table>{table}</table>
<p>KID/FID against the real training photos (lower is better;
n = {scores['labels2photo_identity'].get('n_generated')}); SSIM/PSNR against the paired truth.</p>\n"""
    galleries = "".join(f"<h2>{name.replace('2', ' → ')}</h2><table>{gallery(name, inputs, truths)}</table>\n"
                        for name, inputs, truths in (("photo2labels", "testB", "testA"),
                                                     ("labels2photo", "testA", "testB"))
                        if name in scores["plan"].get("directions", ALL))
    reports = "".join(f"<li><a href='{html.escape(r.relative_to(out).as_posix())}'>{html.escape(r.parent.name)}"
                      "</a></li>" for r in sorted(out.glob("checkpoints*/report.html")))
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>cyclegan_tf demo</title>
<style>body{{font-family:sans-serif}} img{{width:128px;image-rendering:pixelated}} td,th{{padding:3px 8px}}</style>
</head><body><h1>cyclegan_tf demo: ShapeScapes labels ↔ photo</h1>
<p>{scores['seconds']} s in all. TensorBoard: <code>tensorboard --logdir {html.escape(str(out))}</code></p>
<ul>{plan}</ul>
{sections}<h2>Training: {budget}</h2><table><tr><th>model</th><th>data</th><th>steps</th>
<th>s/step (median)</th><th>peak memory (MB, RSS)</th></tr>{cost}</table>
<p>Each run's report (loss and evaluation curves, best and latest scores, held-out gallery, flags):</p>
<ul>{reports}</ul>
{galleries}</body></html>
"""
    atomic.write_text(out / "index.html", page)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m cyclegan_tf.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--reduced", action="store_true", help="tiny sizes and a few steps (the CI test)")
    p.add_argument("--steps", type=int, default=0, help="override the number of training steps")
    p.add_argument("--models", default=models.DEFAULT, help="comma-separated registered models, e.g. "
                   "cycle_gan,pix2pix")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="train.py --precision (exports stay float32, so only training differs)")
    p.add_argument("--train_seed", type=int, default=None,
                   help="train.py --seed (default: the data's seed 0); the data and test split stay the same")
    p.add_argument("--size", type=int, default=0, help="image size (default 64 on a CPU, 128 on a GPU)")
    p.add_argument("--minutes", type=float, default=0,
                   help="give every training run this wall-clock time instead of the same steps (a short probe "
                        "run measures its speed)")
    p.add_argument("--directions", default=",".join(ALL), help="labels2photo, photo2labels or both")
    args = p.parse_args(argv)
    chosen = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if not chosen or set(chosen) - set(models.names()):
        p.error(f"--models={args.models}: choose from {', '.join(models.names())}")
    import tensorflow as tf

    plan = dict(REDUCED if args.reduced else GPU if tf.config.list_physical_devices("GPU") else CPU)
    if args.steps:
        plan["steps"] = args.steps
    if args.precision != "fp32":
        plan["precision"] = args.precision
    if args.train_seed is not None:
        plan["train_seed"] = args.train_seed
    if args.size:
        plan["size"] = args.size
    if args.minutes:
        plan["minutes"] = args.minutes
    directions = tuple(d.strip() for d in args.directions.split(",") if d.strip())
    if not directions or set(directions) - set(ALL):
        p.error(f"--directions={args.directions}: choose from {', '.join(ALL)}")
    if directions != ALL:
        plan["directions"] = directions
    run_demo(Path(args.out), plan, model_names=chosen)


if __name__ == "__main__":
    main()
