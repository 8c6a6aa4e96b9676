"""One HTML page for a training run: where it stands, how it scores and what it draws.

  python -m cyclegan_tf.report RUN [--out FILE]       # default RUN/report.html, images in RUN/report_files/

The page shows the run's model, data and progress, the best and latest evaluation scores side by side,
the held-out gallery at those steps, the loss and evaluation curves (from the TensorBoard event files),
the run's flags and the TensorBoard command. It needs no network: no CDN, no script; its images sit in a
folder beside it, named by their content so that a browser never shows a stale plot after a rewrite.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import html
import io
import json
import math
import re
import shlex
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

from cyclegan_tf import atomic
from cyclegan_tf.errors import UserError, exit_status

LOWER_IS_BETTER = ("fid", "kid", "mae", "rmse")
DIRECTIONS = ("XtoY", "YtoX")
METRIC_NAMES = {"fid": "FID", "kid": "KID", "precision": "Precision", "recall": "Recall", "density": "Density",
                "coverage": "Coverage", "psnr": "PSNR (dB)", "ssim": "SSIM", "mae": "MAE", "rmse": "RMSE",
                "is_mean": "Inception Score", "pixel_accuracy": "Pixel accuracy", "class_accuracy": "Class accuracy",
                "class_iou": "Class IoU"}
BAND_METRICS = ("mae", "rmse", "psnr", "ssim")  # scores.jsonl's "bands": each band's, for domains of several
COLOURS = {"XtoY": "#1f77b4", "YtoX": "#ff7f0e"}  # one colour per direction in every plot
EVAL_HINT = "no evaluation: train with --eval_every N --eval_X … --eval_Y … to score held-out images as it trains"
_ASSET = re.compile(r"^[a-z0-9_.-]+-[0-9a-f]{12}\.png$")
_STEP_DIR = re.compile(r"^step-(\d+)$")
P = ParamSpec("P")
R = TypeVar("R")


# --- reading the run ---------------------------------------------------------------------------------


@dataclass
class Events:
    """What the TensorBoard event files hold: scalars by tag and step, the newest preview images by tag."""

    scalars: dict[str, dict[int, float]] = field(default_factory=dict)
    images: dict[str, tuple[int, list[bytes]]] = field(default_factory=dict)
    last_wall_time: float = 0.0

    @property
    def last_step(self) -> int:
        return max((max(v) for v in self.scalars.values() if v), default=0)

    def series(self, tag: str) -> tuple[list[int], list[float]]:
        steps = sorted(self.scalars.get(tag, {}))
        return steps, [self.scalars[tag][s] for s in steps]


def _records(path: Path) -> Iterator[bytes]:
    """The records of a TFRecord file (u64 length, u32 masked CRC of it, data, u32 CRC of the data).

    Read here rather than with TensorFlow (6–10 s to import, for a page) or tensorboard's stub reader (its
    pure-Python CRC of every byte takes minutes on event files full of preview images). The length's CRC
    is checked, so a torn or damaged tail ends the file instead of being parsed as garbage; a record cut
    short by a writer still at work ends it too."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    with open(path, "rb") as f:
        while True:
            header = f.read(12)
            if len(header) < 12:
                return
            length, crc = struct.unpack("<QI", header)
            if masked_crc32c(header[:8]) != crc:
                return
            data = f.read(length)
            if len(data) < length or len(f.read(4)) < 4:
                return
            yield data


def _event_files(run: Path) -> list[Path]:
    """The run's event files, oldest session first (their names carry the creation time in seconds)."""
    def created(p: Path) -> tuple[int, str]:
        parts = p.name.split(".")
        return (int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else 0, p.name)

    return sorted((p for p in run.glob("events.out.tfevents.*") if p.is_file()), key=created)


def read_events(run: Path) -> Events:
    """Scalars (TF2's tensors and TF1's simple values) and the newest images of every tag.

    A resumed run logs again the steps after its last checkpoint: a value at a step at or before one
    already seen for that tag drops the tag's values from that step on (TensorBoard's own rule for
    orphaned data), so each curve is the history that led to the checkpoint trained on."""
    from tensorboard.compat.proto import event_pb2

    events, plugins = Events(), {}
    for path in _event_files(run):
        try:
            for record in _records(path):  # one at a time: preview images can make the files large
                _add_event(events, plugins, event_pb2.Event.FromString(record))
        except OSError as e:
            raise UserError(f"{path}: cannot read ({e.strerror})") from None
    return events


def _add_event(events: Events, plugins: dict[str, str], event) -> None:
    """Adds one Event proto's summary values (`plugins`: each tag's plugin, from its first value)."""
    from tensorboard.util import tensor_util

    if not event.HasField("summary"):
        return
    events.last_wall_time = max(events.last_wall_time, event.wall_time)
    for value in event.summary.value:
        if value.metadata.plugin_data.plugin_name:  # TF2 writes it with a tag's first value only
            plugins[value.tag] = value.metadata.plugin_data.plugin_name
        kind = value.WhichOneof("value")
        if kind == "simple_value":
            _add_scalar(events, value.tag, event.step, value.simple_value)
        elif kind == "tensor" and plugins.get(value.tag) == "images":
            events.images[value.tag] = (event.step, list(value.tensor.string_val[2:]))  # [w, h, png…]
        elif kind == "tensor" and plugins.get(value.tag, "scalars") == "scalars":
            array = tensor_util.make_ndarray(value.tensor)
            if array.size == 1 and array.dtype.kind in "fiu":
                _add_scalar(events, value.tag, event.step, float(array.reshape(())))


def _add_scalar(events: Events, tag: str, step: int, value: float) -> None:
    values = events.scalars.setdefault(tag, {})
    if values and step <= next(reversed(values)):  # steps are kept ascending: the last key is the newest
        events.scalars[tag] = values = {s: v for s, v in values.items() if s < step}
    values[step] = value


def read_scores(run: Path) -> tuple[dict[int, dict], int]:
    """RUN/eval/scores.jsonl as {step: record}, the last line of a step winning (a resumed run evaluates
    a step again), and the number of lines that did not parse (a line cut short by a writer at work)."""
    path = run / "eval" / "scores.jsonl"
    if not path.exists():
        return {}, 0
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    scores, bad = {}, 0
    for line in filter(str.strip, lines):
        try:
            record = json.loads(line)
            step = int(record["step"])
            if not isinstance(record.get("scores"), dict):
                raise ValueError("no scores")
        except (ValueError, KeyError, TypeError):
            bad += 1
            continue
        scores[step] = record
    return dict(sorted(scores.items())), bad


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_flags(run: Path) -> dict:
    path = run / "flags.json"
    try:
        flags = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    except ValueError as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(flags, dict):
        raise UserError(f"{path}: not a flags file (expected a JSON object)")
    return flags


def check_run(run: Path) -> None:
    """One-line errors for what is not a training run's folder."""
    if not run.is_dir():
        raise UserError(f"{run}: no such folder")
    if not (run / "flags.json").is_file():
        raise UserError(f"{run}: not a training run (no flags.json); give the folder train.py wrote "
                        f"(--checkpoint_dir, or checkpoints/<date>)")
    if not _event_files(run):
        raise UserError(f"{run}: no TensorBoard event files yet (training writes them after its first "
                        f"--log_every steps)")


# --- numbers -----------------------------------------------------------------------------------------


def split_metric(name: str) -> tuple[str, str]:
    """'fid_XtoY' → ('fid', 'XtoY'); 'is_mean_YtoX' → ('is_mean', 'YtoX'); a name without a direction → (name, '')."""
    metric, _, direction = name.rpartition("_")
    return (metric, direction) if metric and direction in DIRECTIONS else (name, "")


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER


def _number(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def fmt(v: object) -> str:
    v = _number(v)
    if v is None:
        return "—"
    # Fixed decimals by size, so that a column's values line up (0.200 beside 0.185, not 0.2).
    digits = 0 if abs(v) >= 1000 else 1 if abs(v) >= 100 else 2 if abs(v) >= 10 else 3 if abs(v) >= 0.1 else 4
    return f"{v:,.{digits}f}"


def smooth(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: a debiased exponential moving average, skipping NaN and infinities."""
    out, last, n = [], 0.0, 0
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        n += 1
        last = last * weight + (1 - weight) * v
        out.append(last / (1 - weight ** n))
    return out


def total_steps(flags: dict, events: Events) -> tuple[int | None, bool]:
    """(steps the run trains, whether that is an estimate). flags.json has --max_steps, or epochs whose
    length depends on the data's size; then the learning rate, once its linear decay has begun, tells the
    steps per epoch: lr = lr0 · (1 − (s − E·n) / (D·n)) at step s, E and D the constant and decaying epochs."""
    if _number(flags.get("max_steps")) and flags["max_steps"] > 0:
        return int(flags["max_steps"]), False
    epochs, decay, lr0 = (_number(flags.get(k)) for k in ("epochs", "epochs_decay", "learning_rate"))
    steps, lrs = events.series("learning_rate")
    if not (epochs and decay and lr0 and steps) or lrs[-1] >= lr0 * (1 - 1e-4):
        return None, False
    per_epoch = steps[-1] / (epochs + decay * (1 - lrs[-1] / lr0))
    return round((epochs + decay) * per_epoch), True


# --- plots -------------------------------------------------------------------------------------------


RC = {"font.size": 9, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
      "axes.titleweight": "bold", "axes.titlesize": 10}


def _styled(plot: Callable[P, R]) -> Callable[P, R]:
    """Runs a plot in the report's matplotlib style, leaving a caller's (the demo's) settings as they were."""

    @functools.wraps(plot)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        import matplotlib

        with matplotlib.rc_context(RC):
            return plot(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float, columns: int = 1):
    """A matplotlib Figure and its axes (a list). matplotlib is imported here only, so the other tools do not
    pay for it; Figure, not pyplot: no backend to choose and no global list of figures to close."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")  # one draw, unlike savefig's bbox "tight"
    return fig, list(fig.subplots(1, columns, squeeze=False)[0])


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=144, metadata={"Software": None})
    return buffer.getvalue()


def _bulk_limits(values: list[float]) -> tuple[float, float] | None:
    """Y limits that leave out early spikes (a GAN's first steps) when they would flatten the rest."""
    import numpy as np

    finite = np.asarray([v for v in values if math.isfinite(v)])
    if finite.size < 10:
        return None
    lo, hi = np.percentile(finite, [1, 99])
    if hi <= lo or (finite.max() - finite.min()) < 1.5 * (hi - lo):
        return None
    pad = 0.08 * (hi - lo)
    return float(lo - pad), float(hi + pad)


def _steps_axis(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no step 10.25 on a short run


@_styled
def loss_plot(events: Events) -> bytes | None:
    """Every loss/* scalar on one axis: faint raw values, and the same colour smoothed lightly. A log axis
    when the losses differ by more than 10× in size (pix2pix's L1 term, ×100, beside its GAN losses): on
    a linear one the small ones would be flat lines at the bottom. Symmetric log, linear near 0, so that
    a loss that is 0 (a switched-off term) or negative (WGAN-GP's critic) is still drawn."""
    import numpy as np

    tags = sorted(t for t in events.scalars if t.startswith("loss/"))
    if not tags:
        return None
    series = {tag: events.series(tag) for tag in tags}
    sizes = [abs(float(np.nanmedian(values))) for _, values in series.values() if np.isfinite(values).any()]
    sizes = [v for v in sizes if v > 0]
    log = len(sizes) > 1 and max(sizes) / min(sizes) > 10
    fig, (ax,) = _figure(10, 4)
    for i, (tag, (steps, values)) in enumerate(series.items()):
        colour = f"C{i % 10}"
        # The smoothing window grows with the run (about 1% of its points) but stays light on short runs.
        weight = max(0.6, 1 - 100 / max(1, len(values)))
        ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
        ax.plot(steps, smooth(values, weight), color=colour, linewidth=1.8, label=tag.removeprefix("loss/"))
    if log:
        from matplotlib.ticker import SymmetricalLogLocator

        ax.set_yscale("symlog", linthresh=min(sizes) / 2)
        ax.yaxis.set_major_locator(SymmetricalLogLocator(linthresh=min(sizes) / 2, base=10, subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter("{x:g}")  # 0.5, 1, 2, … rather than 10⁰ and 10¹ alone
    else:
        limits = _bulk_limits([v for _, values in series.values() for v in values])
        if limits:
            ax.set_ylim(*limits)
    _steps_axis(ax)
    ax.set_ylabel("loss (log scale)" if log else "loss")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return _png(fig)


@_styled
def training_plot(events: Events) -> bytes | None:
    """The learning rate and the speed, side by side."""
    panels = [(t, label) for t, label in (("learning_rate", "learning rate"), ("perf/steps_per_sec", "steps/s"))
              if events.scalars.get(t)]
    if not panels:
        return None
    fig, axes = _figure(10, 2.4, len(panels))
    for ax, (tag, label) in zip(axes, panels):
        steps, values = events.series(tag)
        ax.plot(steps, values, color="#57606a", linewidth=1.4)
        ax.set_title(label, loc="left")
        _steps_axis(ax)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter("{x:g}")  # 2e-05 on the tick, not a 1e-5 offset beside the title
    return _png(fig)


def eval_curves(events: Events, scores: dict[int, dict]) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
    """{metric: {direction: (steps, values)}} from the eval/* scalars, or from scores.jsonl when the events
    have none (e.g. written by an older trainer)."""
    curves: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    for tag in sorted(t for t in events.scalars if t.startswith("eval/") and t != "eval/seconds"):
        metric, direction = split_metric(tag.removeprefix("eval/"))
        curves.setdefault(metric, {})[direction] = events.series(tag)
    if curves or not scores:
        return curves
    names = sorted({name for record in scores.values() for name in record["scores"]})
    for name in names:
        metric, direction = split_metric(name)
        steps = [s for s, r in scores.items() if name in r["scores"]]
        values = [_number(scores[s]["scores"][name]) for s in steps]
        curves.setdefault(metric, {})[direction] = (steps, [math.nan if v is None else v for v in values])
    return curves


@_styled
def metric_plot(metric: str, lines: dict[str, tuple[list[int], list[float]]], best_step: int | None) -> bytes:
    """One metric, a line per direction, the best step marked."""
    fig, (ax,) = _figure(5, 3)
    for i, (direction, (steps, values)) in enumerate(sorted(lines.items())):
        if not any(math.isfinite(v) for v in values):
            continue  # e.g. SSIM of a direction without ground truth: NaN at every step
        colour = COLOURS.get(direction, f"C{i + 2}")
        label = direction.replace("to", " → ") if direction else metric
        ax.plot(steps, values, color=colour, linewidth=1.6, marker="o", markersize=3.5, label=label)
        if best_step in steps:
            ax.plot([best_step], [values[steps.index(best_step)]], marker="o", markersize=10, color=colour,
                    markerfacecolor="none", markeredgewidth=1.8)
    if best_step is not None:
        ax.axvline(best_step, color="#2da44e", linestyle="--", linewidth=1.2, label=f"best (step {best_step})")
    arrow = "lower is better" if lower_is_better(metric) else "higher is better"
    ax.set_title(f"{METRIC_NAMES.get(metric, metric)}  ({arrow})", loc="left")
    _steps_axis(ax)
    evaluated = sorted({s for steps, _ in lines.values() for s in steps})
    if len(evaluated) <= 8:
        ax.set_xticks(evaluated)  # a few evaluations: their steps, not 105, 120, 135…
    ax.legend(frameon=False, fontsize=8)
    return _png(fig)


# --- the page ----------------------------------------------------------------------------------------


class _Assets:
    """Images beside the page, named by content: a rewrite never changes a file a reader may be loading,
    and a browser's cache never shows an old plot under the same name."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.names = folder, set()

    def add(self, stem: str, data: bytes) -> str:
        name = f"{re.sub(r'[^a-z0-9_.-]+', '_', stem.lower())}-{hashlib.sha256(data).hexdigest()[:12]}.png"
        path = self.folder / name
        if not path.exists():
            self.folder.mkdir(exist_ok=True)
            with atomic.atomic_path(path) as tmp:
                tmp.write_bytes(data)
        self.names.add(name)
        return f"{self.folder.name}/{name}"

    def prune(self) -> None:
        """Deletes the images the new page no longer shows (after it is in place, so the old page never
        points at a missing file), and temporaries of killed writers."""
        try:
            entries = list(self.folder.iterdir())
        except OSError:
            return
        atomic.remove_stale(*(self.folder / m["name"].lstrip(".") for e in entries
                              if (m := re.match(r"^(?P<name>.+)\.tmp-\d+$", e.name))))
        for entry in entries:
            if _ASSET.match(entry.name) and entry.name not in self.names:
                entry.unlink(missing_ok=True)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _img(src: str, data: bytes, alt: str, room: int) -> str:
    """An <img> with its size: small images (64 px galleries) drawn at a whole multiple that fits `room`
    pixels, their pixels kept sharp; large ones shrunk to it by the browser."""
    from PIL import Image

    try:
        width, height = Image.open(io.BytesIO(data)).size
    except Exception:  # noqa: BLE001 - a damaged image still gets its <img>; the browser shows it broken
        return f'<img src="{_e(src)}" alt="{_e(alt)}">'
    scale = max(1, min(4, room // max(1, width)))
    cls = ' class="pix"' if scale > 1 else ""
    shown = min(width * scale, room)
    return (f'<img{cls} src="{_e(src)}" alt="{_e(alt)}" width="{shown}" '
            f'height="{round(height * scale * shown / (width * scale))}">')


def _direction(direction: str) -> str:
    return direction.replace("to", " → ") if direction in DIRECTIONS else direction


def _pixel_kinds(flags: dict) -> str:
    """Each domain's pixels from flags.json, when one is not 8-bit RGB ('' for RGB runs and older ones)."""
    from cyclegan_tf.data import pixels

    try:
        kinds = [pixels.kind(int(flags.get(nc) or 0), str(flags.get(f"{d}_dtype") or ""),
                             str(flags.get(f"{d}_range") or ""), f"--{d}_range")
                 for d, nc in (("X", "input_nc"), ("Y", "output_nc"))]
    except (UserError, TypeError, ValueError):
        return ""  # a hand-edited flags file: the page goes on without this fact
    return "" if all(k.rgb for k in kinds) else " · ".join(f"{d} {k.describe()}" for d, k in zip("XY", kinds))


def _header(run: Path, flags: dict, events: Events, total: int | None, estimated: bool) -> str:
    done = events.last_step
    facts = [("model", flags.get("model") or "?")]
    data = [str(flags[k]) for k in ("X", "Y") if flags.get(k)]
    if data:
        facts.append(("data", " ↔ ".join(data)))
    kinds = _pixel_kinds(flags)
    if kinds:
        facts.append(("pixels", kinds))
    if flags.get("image_size"):
        facts.append(("image size", f"{flags['image_size']} px, batch {flags.get('batch_size', '?')}"))
    progress = ""
    if total:
        share = min(1.0, done / max(1, total))
        facts.append(("steps", f"{done:,} of {'≈' if estimated else ''}{total:,} ({share:.0%})"))
        progress = f'<div class="bar" title="{share:.0%}"><span style="width:{share * 100:.1f}%"></span></div>'
    else:
        epochs = [_number(flags.get(k)) for k in ("epochs", "epochs_decay")]
        of = f" of {sum(epochs):g} epochs" if None not in epochs else ""
        facts.append(("steps", f"{done:,}{of}"))
    speed = events.series("perf/steps_per_sec")[1]
    if speed:
        facts.append(("speed", f"{fmt(speed[-1])} steps/s"))
    if events.last_wall_time:
        facts.append(("last written", datetime.fromtimestamp(events.last_wall_time).strftime("%Y-%m-%d %H:%M")))
    stopped = _read_json(run / "eval" / "stopped.json")  # during_training.STOPPED_FILE, written by --patience
    if stopped and stopped.get("reason"):
        facts.append(("stopped early", f"at step {stopped.get('step', '?')}: {stopped['reason']}"))
    cells = "".join(f'<div class="fact"><span class="k">{_e(k)}</span><span class="v">{_e(v)}</span>'
                    f'{progress if k == "steps" else ""}</div>' for k, v in facts)
    command = f"tensorboard --logdir {shlex.quote(str(run.resolve()))}"
    return (f"<header><h1>{_e(run.resolve().name)}</h1><div class=\"path\">{_e(run.resolve())}</div>"
            f"<div class=\"facts\">{cells}</div>"
            f"<div class=\"tb\">TensorBoard: <code>{_e(command)}</code></div></header>")


def _health_panel(run: Path) -> str:
    """The monitors' latest states (RUN/health.jsonl), what each firing one means and what to try."""
    from cyclegan_tf.evaluation import health

    latest = health.read(run)
    if not latest:
        return ""
    rows = []
    for key, row in sorted(latest.items(), key=lambda kv: (not kv[1].get("fired"), kv[0])):
        monitor = health.MONITORS.get(str(row.get("monitor")))
        if monitor is None:
            continue
        state = "<b>fired</b>" if row.get("fired") else "ok"
        advice = f"{_e(monitor.means)}; try: {_e(monitor.fix)}" if row.get("fired") else ""
        rows.append(f"<tr><td>{_e(key)}</td><td>{state}</td><td>{fmt(row.get('value'))}</td>"
                    f"<td>{_e(row.get('step'))}</td><td>{advice}</td></tr>")
    fired = sum(1 for r in latest.values() if r.get("fired"))
    said = f"{fired} monitor(s) fired at their latest check" if fired else "no monitor fired at its latest check"
    return (f"<h2>Health</h2><p>{said} (<code>health.jsonl</code>; README, \"Is my training "
            f"working?\").</p><table><tr><th>monitor</th><th>state</th><th>value</th><th>step</th><th>what it means, "
            f"what to try</th></tr>{''.join(rows)}</table>")


def _score_table(scores: dict[int, dict], best: dict | None, bad_lines: int) -> str:
    if not scores and best is None:
        return f'<h2>Scores</h2><p class="note">{_e(EVAL_HINT[0].upper() + EVAL_HINT[1:])}.</p>'
    latest_step = max(scores) if scores else int(best["step"])
    latest = scores.get(latest_step, {}).get("scores", {})
    best_step = int(best["step"]) if best else None
    best_scores = {}
    if best:  # best.json's own copy of the scores, else that step's line of scores.jsonl
        best_scores = best.get("scores") if isinstance(best.get("scores"), dict) else \
            scores.get(best_step, {}).get("scores", {})
    columns = [(f"best · step {best_step:,}", best_scores)] if best else []
    if best_step != latest_step:
        columns.append((f"latest · step {latest_step:,}", latest))
    names = sorted({*best_scores, *latest}, key=lambda n: (list(METRIC_NAMES).index(split_metric(n)[0])
                                                           if split_metric(n)[0] in METRIC_NAMES else 99, n))
    rows = []
    for name in names:
        metric, direction = split_metric(name)
        values = [_number(col.get(name)) for _, col in columns]
        finite = [v for v in values if v is not None]
        winner = (min if lower_is_better(metric) else max)(finite) if len(finite) > 1 else None
        cells = "".join(f'<td class="num{" win" if v is not None and v == winner else ""}">{fmt(v)}</td>'
                        for v in values)
        key = " sel" if best and name == best.get("metric") else ""
        rows.append(f'<tr class="{key.strip()}"><td>{_e(METRIC_NAMES.get(metric, metric))}'
                    f'<span class="dir">{"↓" if lower_is_better(metric) else "↑"}</span></td>'
                    f"<td>{_e(_direction(direction))}</td>{cells}</tr>")
    head = "".join(f'<th class="num">{_e(title)}</th>' for title, _ in columns)
    if best:
        metric, direction = split_metric(str(best.get("metric", "")))
        summary = (f"Best checkpoint <code>{_e(best.get('checkpoint', f'best-{best_step}'))}</code>, chosen by "
                   f"{_e(METRIC_NAMES.get(metric, metric))} {_e(_direction(direction))} = "
                   f"<b>{fmt(best.get('value'))}</b> ({'lower' if lower_is_better(metric) else 'higher'} is better).")
        if best_step == latest_step:
            summary += " The latest evaluation is the best."
    else:
        summary = "No best checkpoint yet (RUN/eval/best.json is missing)."
    record = scores.get(latest_step, {})
    n = record.get("n") if isinstance(record.get("n"), dict) else {}
    extra = []
    if n:
        extra.append("Held-out images: " + ", ".join(f"{_e(k)} {_e(v)}" for k, v in n.items()))
    if _number(record.get("seconds")):
        extra.append(f"the latest evaluation took {fmt(record['seconds'])} s")
    extra.append(f"{len(scores)} evaluation{'s' if len(scores) != 1 else ''}")
    if bad_lines:
        extra.append(f"{bad_lines} unreadable line{'s' if bad_lines != 1 else ''} of eval/scores.jsonl skipped")
    return (f"<h2>Scores</h2><p>{summary}</p>"
            f'<table class="scores"><thead><tr><th>metric</th><th>direction</th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table><p class="small">{"; ".join(extra)}. ↓ lower is better, '
            f"↑ higher is better; the better of the columns is in bold.</p>{_notes(record)}"
            f"{_band_tables(record, latest_step)}")


def _notes(record: dict) -> str:
    """The evaluator's notes on scores it left out or changed (FID of images that are not RGB photos), one
    line per direction."""
    notes = record.get("notes") if isinstance(record.get("notes"), dict) else {}
    return "".join(f'<p class="note">{_e(_direction(d))}: {_e(text)}.</p>' for d, text in notes.items())


def _band_tables(record: dict, step: int) -> str:
    """Each band's scores against the truth at `step`, for domains of several bands (their mean is above)."""
    bands = record.get("bands") if isinstance(record.get("bands"), dict) else {}
    parts = []
    for direction, values in bands.items():
        if not isinstance(values, dict):
            continue
        columns = [values[m] for m in BAND_METRICS if isinstance(values.get(m), list)]
        head = "".join(f'<th class="num">{_e(METRIC_NAMES[m])}</th>' for m in BAND_METRICS
                       if isinstance(values.get(m), list))
        rows = "".join(f"<tr><td>{i}</td>{''.join(_band_cell(c, i) for c in columns)}</tr>"
                       for i in range(max(map(len, columns), default=0)))
        parts.append(f"<h3>{_e(_direction(direction))} per band · step {step:,}</h3>"
                     f'<table class="scores"><thead><tr><th>band</th>{head}</tr></thead><tbody>{rows}</tbody></table>')
    if not parts:
        return ""
    return ('<p class="small">Against the truth in the data\'s units, the range of each band its data range; the '
            f"table above has their mean.</p>{''.join(parts)}")


def _band_cell(values: list, i: int) -> str:
    return f'<td class="num">{fmt(values[i] if i < len(values) else None)}</td>'


def _galleries(run: Path, scores: dict[int, dict], best: dict | None, events: Events, assets: _Assets) -> str:
    """The held-out galleries at the best and the latest step side by side, one row per direction; then the
    newest training previews of the event files (all a run without evaluation has to show)."""
    steps: list[tuple[str, int]] = []
    if best is not None:
        steps.append(("best", int(best["step"])))
    evaluated = set(scores) | {int(m[1]) for p in (run / "eval").glob("step-*") if (m := _STEP_DIR.match(p.name))}
    if evaluated and max(evaluated) not in {s for _, s in steps}:
        steps.append(("latest", max(evaluated)))
    found = {step: {p.stem: p for p in (run / "eval" / f"step-{step}").glob("*.png")} for _, step in steps}
    directions = sorted({d for pngs in found.values() for d in pngs},
                        key=lambda d: (DIRECTIONS.index(d) if d in DIRECTIONS else len(DIRECTIONS), d))
    width = 1040 // max(1, len(steps)) - 24
    parts = []
    if steps:
        head = "".join(f"<th>{which} · step {step:,}</th>" for which, step in steps)
        rows = []
        for direction in directions:
            cells = []
            for _, step in steps:
                png = found[step].get(direction)
                try:
                    data = png.read_bytes() if png else None
                except OSError:
                    data = None
                if data is None:
                    cells.append('<td class="small">not saved</td>')
                    continue
                src = assets.add(f"gallery-{step}-{direction}", data)
                cells.append(f'<td><a href="{_e(src)}">{_img(src, data, f"{direction} at step {step}", width)}'
                             f"</a></td>")
            rows.append(f'<tr><th colspan="{len(steps)}">{_e(_direction(direction))}</th></tr>'
                        f"<tr>{''.join(cells)}</tr>")
        body = "".join(rows) or f'<tr><td colspan="{len(steps)}" class="small">No gallery saved.</td></tr>'
        parts.append(f'<p class="small">Held-out inputs (top row of each image) and their translations (bottom '
                     f'row); click an image for its full size.</p><table class="gallery"><thead><tr>{head}</tr>'
                     f"</thead><tbody>{body}</tbody></table>")
    previews = []
    # the held-out gallery's own images (eval/<direction>) are shown above, from its PNG files
    for tag, (step, images) in sorted(t for t in events.images.items() if not (steps and t[0].startswith("eval/"))):
        for i, data in enumerate(images[:1]):
            src = assets.add(f"preview-{tag}-{i}", data)
            previews.append(f'<figure><a href="{_e(src)}">{_img(src, data, tag, 500)}</a><figcaption>{_e(tag)} '
                            f"at step {step:,}</figcaption></figure>")
    if previews:
        title = "<h3>Training previews (the newest in the event files)</h3>" if steps else \
            '<p class="small">The newest in the event files.</p>'
        parts.append(f'{title}<div class="previews">{"".join(previews)}</div>')
    if not parts:
        return ""
    return f"<h2>{'Held-out gallery' if steps else 'Training previews'}</h2>{''.join(parts)}"


def _curves(events: Events, scores: dict[int, dict], best: dict | None, assets: _Assets) -> str:
    parts = []
    curves = eval_curves(events, scores)
    best_step = int(best["step"]) if best else None
    if curves:
        order = list(METRIC_NAMES)
        figures = []
        for metric in sorted(curves, key=lambda m: (order.index(m) if m in order else len(order), m)):
            src = assets.add(f"eval-{metric}", metric_plot(metric, curves[metric], best_step))
            figures.append(f'<figure><img src="{_e(src)}" alt="{_e(METRIC_NAMES.get(metric, metric))}"></figure>')
        figures = "".join(figures)
        parts.append(f'<h3>Evaluation</h3><div class="plots">{figures}</div>')
    losses = loss_plot(events)
    if losses:
        parts.append(f'<h3>Losses</h3><figure><img src="{_e(assets.add("losses", losses))}" alt="losses">'
                     f"<figcaption>Faint: as logged; solid: smoothed (a moving average, as TensorBoard's "
                     f"smoothing).</figcaption></figure>")
    schedule = training_plot(events)
    if schedule:
        parts.append(f'<h3>Learning rate and speed</h3><figure><img src="{_e(assets.add("training", schedule))}"'
                     f' alt="learning rate and speed"></figure>')
    return f"<h2>Curves</h2>{''.join(parts)}"


def _flags_table(flags: dict) -> str:
    from cyclegan_tf.config import fields

    known = {f.name: f for f in fields()}
    rows = []
    for name in sorted(flags, key=str.lower):
        value = flags[name]
        f = known.get(name)
        changed = f is not None and value != f.default
        shown = "—" if value in ("", None) else json.dumps(value) if isinstance(value, (list, dict)) else \
            ("true" if value is True else "false" if value is False else str(value))
        title = f' title="{_e(f.metadata.get("help", ""))}"' if f is not None else ""
        rows.append(f'<tr class="{"changed" if changed else ""}"><td{title}>{_e(name)}</td>'
                    f"<td>{_e(shown)}</td></tr>")
    half = (len(rows) + 1) // 2
    tables = "".join(f"<table><tbody>{''.join(chunk)}</tbody></table>" for chunk in (rows[:half], rows[half:])
                     if chunk)
    return (f'<h2>Flags</h2><p class="small">From flags.json. In bold: values that differ from train.py\'s '
            f'defaults. Hover a name for its help.</p><div class="flags">{tables}</div>')


STYLE = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa;--accent:#0969da;--good:#1a7f37}
*{box-sizing:border-box}
body{margin:0;color:var(--fg);background:#fff;
 font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1120px;margin:0 auto;padding:28px 32px 64px}
header{border-bottom:1px solid var(--line);padding-bottom:18px}
h1{font-size:28px;margin:0}
h2{font-size:20px;margin:36px 0 12px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:22px 0 8px;color:var(--muted)}
.path,.small,figcaption{color:var(--muted);font-size:13px}
.facts{display:flex;flex-wrap:wrap;gap:12px 36px;margin:16px 0 14px}
.fact .k{display:block;font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
.fact .v{font-size:17px;font-weight:600;word-break:break-all}
.bar{height:7px;width:220px;background:var(--soft);border:1px solid var(--line);border-radius:4px;margin-top:5px;
 overflow:hidden}
.bar span{display:block;height:100%;background:var(--accent)}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;background:var(--soft);
 padding:2px 6px;border-radius:5px}
.tb code{user-select:all}
table{border-collapse:collapse}
th,td{padding:6px 14px;text-align:left;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums}
.scores td.win{font-weight:700;color:var(--good)}
.scores tr.sel td{background:#ddf4ff}
.dir{color:var(--muted);margin-left:6px;font-size:12px}
.note{background:#fff8c5;border:1px solid #e6d27a;padding:10px 14px;border-radius:6px}
figure{margin:0 0 18px}
figcaption{margin-top:4px}
img{max-width:100%;height:auto}
img.pix{image-rendering:pixelated}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:8px 24px}
.previews{display:flex;flex-wrap:wrap;gap:8px 24px}
.gallery th{text-transform:none;letter-spacing:0;font-size:14px;color:var(--fg);border:0;padding:10px 12px 2px 0}
.gallery thead th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
.gallery td{border:0;padding:2px 24px 8px 0}
.flags{display:flex;flex-wrap:wrap;gap:0 32px;align-items:flex-start}
.flags table{flex:1 1 440px}
.flags td{padding:3px 10px;font-size:13.5px;word-break:break-all}
.flags td:first-child{color:var(--muted);white-space:nowrap;word-break:normal;width:40%}
.flags tr.changed td{font-weight:700;color:var(--fg)}
"""


def write_report(run: Path, out: Path | None = None) -> Path:
    """Writes the run's page (default RUN/report.html, its images in RUN/report_files/); returns its path."""
    run = Path(run)
    check_run(run)
    out = Path(out) if out is not None else run / "report.html"
    if out.is_dir():
        raise UserError(f"--out={out}: is a folder; give a file name such as {out / 'report.html'}")
    if not out.parent.is_dir():
        raise UserError(f"--out={out}: folder {out.parent} does not exist")
    flags = read_flags(run)
    events = read_events(run)
    scores, bad_lines = read_scores(run)
    best = _read_json(run / "eval" / "best.json")
    if best is not None and not isinstance(best.get("step"), int):
        best = None
    total, estimated = total_steps(flags, events)
    atomic.remove_stale(out)
    assets = _Assets(out.with_name(f"{out.stem}_files"))
    body = (_header(run, flags, events, total, estimated) + _score_table(scores, best, bad_lines)
            + _health_panel(run) + _galleries(run, scores, best, events, assets) + _curves(events, scores, best, assets)
            + _flags_table(flags))
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_e(run.resolve().name)}: training report</title><style>{STYLE}</style></head>"
            f"<body><main>{body}<p class=\"small\">Written by <code>python -m cyclegan_tf.report</code> on "
            f"{datetime.now():%Y-%m-%d %H:%M}.</p></main></body></html>\n")
    atomic.write_text(out, page)
    assets.prune()
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cyclegan_tf.report", description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="the run folder train.py wrote (flags.json and TensorBoard event files)")
    p.add_argument("--out", help="the page to write (default RUN/report.html; its images go to <name>_files/)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def run() -> None:
        out = write_report(Path(args.run), Path(args.out) if args.out else None)
        print(f"wrote {out}: open {out.resolve().as_uri()}")

    return exit_status(run)


if __name__ == "__main__":
    sys.exit(main())
