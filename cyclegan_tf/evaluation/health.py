"""Whether a run is healthy, said while it trains: monitors of the ways GAN training is known to fail, computed
from what the step and the evaluations already produce (no second pass over the data).

From the losses logged every --log_every steps: a discriminator winning (its loss near 0 for a window of
logs; junyanz #806: "if D's loss stays near 0 for a while, training has probably collapsed"). From each
evaluation's translations of the held-out images (8-bit pictures): colour inversion (outputs anti-correlated
with their inputs; junyanz FAQ, #91, #249), a generator that returns its input, collapse (outputs of different
inputs nearly equal: their spread far below the real targets'), saturated outputs (most pixels at 0 or 255),
and checkerboard artefacts (the outputs' spectrum at the highest frequency against the real images'). From the
kept held-out score (--keep_best): a run that has stalled (evaluations since its best) or is diverging (the
share of its gain it has lost since).

Each is a TensorBoard scalar `health/<monitor>_<direction>`, a row of `RUN/health.jsonl`, and a log line when
it crosses its threshold (again only when it clears); the run report shows the latest state with what to try.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

FILE = "health.jsonl"


@dataclass(frozen=True)
class Monitor:
    """Fires beyond `threshold` (below it where `below`), and clears only beyond `clear` the other way: a value
    wandering about the threshold gives one line, not one an evaluation (docs/benchmarks.md)."""

    name: str
    below: bool
    threshold: float
    clear: float
    means: str
    fix: str

    def fires(self, value: float) -> bool:
        return value < self.threshold if self.below else value > self.threshold

    def clears(self, value: float) -> bool:
        return value > self.clear if self.below else value < self.clear


MONITORS = {m.name: m for m in (
    Monitor("d_dominance", True, 0.05, 0.1, "a discriminator's loss stayed near 0: it wins every time, so the "
            "adversarial loss teaches its generator little",
            "a lower --D_learning_rate (e.g. a quarter of --learning_rate), an image pool (--pool_size 50), more data"),
    Monitor("inversion", True, -0.5, -0.3, "outputs are anti-correlated with their inputs: colours inverted",
            "keep the identity loss (--lambda_identity 0.5) and train on; or restart with another --seed"),
    Monitor("identity", True, 0.1, 0.2, "outputs barely differ from their inputs: G returns its input",
            "train longer, lower --lambda_identity, or check that X and Y really differ"),
    Monitor("collapse", True, 0.2, 0.3, "outputs of different inputs are nearly equal (mode collapse)",
            "a lower --learning_rate, check --init_gain, more data; restart from an earlier checkpoint"),
    Monitor("saturation", False, 0.5, 0.3, "most output pixels are at 0 or 255: saturated or black outputs",
            "lower --learning_rate; check the data's range (build_data.py) and --init_gain"),
    Monitor("checkerboard", False, 4.0, 2.5, "the outputs' highest-frequency energy is far above the real "
            "images': checkerboard artefacts", "--upsample resize (resize-convolution instead of transposed convs)"),
    Monitor("stalled", False, 4.5, 0.5, "the kept held-out score has not improved for this many evaluations",
            "the best checkpoint is kept: stop here (--patience K stops by itself), or lower --learning_rate"),
    Monitor("diverging", False, 0.5, 0.25, "the held-out score lost this share of what the run had gained "
            "(0: at its best, 1: back to its first evaluation)", "export the best checkpoint (--checkpoint best); "
            "restart from it with a lower --learning_rate or --D_learning_rate"),
)}


MIN_GAIN = 0.1  # diverging needs the best score to have moved this share of the first one (docs/benchmarks.md)


def diverging(values: list[float], lower_is_better: bool) -> float:
    """How much of its gain over the first evaluation the latest score lost: (latest − best) / (first − best),
    worse positive; 0 while the run has gained less than MIN_GAIN of its first score (stalled says that)."""
    finite = [v for v in values if np.isfinite(v)]
    if len(finite) < 2 or not np.isfinite(values[-1]):
        return float("inf") if finite and not np.isfinite(values[-1]) else 0.0
    best = min(finite) if lower_is_better else max(finite)
    gained = abs(finite[0] - best)
    if gained <= MIN_GAIN * abs(finite[0]):  # a gain within the score's noise: losing it says nothing
        return 0.0
    return float(abs(values[-1] - best) / gained)


def d_dominance(losses: dict[str, float], groups: tuple[tuple[str, ...], ...] = ()) -> float | None:
    """The smallest discriminator loss: each group of loss names summed (one discriminator's), or without
    groups all the names starting with D; None if the model logs none."""
    groups = groups or (tuple(k for k in losses if k.startswith("D")),)
    sums = [sum(losses[k] for k in g) for g in groups if g and all(k in losses for k in g)]
    return float(min(sums)) if sums else None


def _grey(images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float64)
    return x.mean(axis=-1) if x.ndim == 4 else x


def inversion(inputs: np.ndarray, fake: np.ndarray) -> float:
    """The mean over images of the correlation of input and output brightness (−1: inverted)."""
    a, b = _grey(inputs), _grey(fake)
    if a.shape != b.shape:
        return 0.0
    a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(1, keepdims=True)
    b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(1, keepdims=True)
    norm = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return float(np.mean(np.where(norm > 0, (a * b).sum(1) / np.maximum(norm, 1e-12), 0.0)))


def identity(inputs: np.ndarray, fake: np.ndarray, real: np.ndarray) -> float:
    """How far outputs moved from their inputs, against how far the target domain's images lie from them."""
    if inputs.shape[1:] != fake.shape[1:] or inputs.shape[1:] != real.shape[1:]:
        return 1.0
    n = min(len(inputs), len(real))
    moved = np.abs(fake.astype(np.float64) - inputs).mean()
    apart = np.abs(real[:n].astype(np.float64) - inputs[:n]).mean()
    return float(moved / apart) if apart > 0 else 1.0


SPREAD_IMAGES = 64  # images whose pairwise differences measure a set's diversity (all pairs: quadratic)


def _spread(images: np.ndarray) -> float:
    x = np.stack([np.asarray(Image.fromarray(g.astype(np.float32)).resize((32, 32), Image.Resampling.BOX)).ravel()
                  for g in _grey(images[:SPREAD_IMAGES])])
    pairs = np.abs(x[:, None] - x[None]).mean(-1)
    return float(pairs[np.triu_indices(len(x), 1)].mean())


def collapse(fake: np.ndarray, real: np.ndarray) -> float:
    """The outputs' mean pairwise difference against the real targets' (1: as diverse)."""
    if len(fake) < 2 or len(real) < 2:
        return 1.0
    spread = _spread(real[:len(fake)])
    return _spread(fake) / spread if spread > 0 else 1.0


def saturation(fake: np.ndarray) -> float:
    """The share of output values at the ends of the 8-bit range."""
    return float(np.mean((fake <= 1) | (fake >= 254)))


def _nyquist_share(images: np.ndarray) -> float:
    g = _grey(images)
    g = g - g.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(g)) ** 2
    h, w = g.shape[1:]
    top = power[:, h // 2, :].sum() + power[:, :, w // 2].sum()
    return float(top / max(power.sum(), 1e-12))


def checkerboard(fake: np.ndarray, real: np.ndarray) -> float:
    """The outputs' share of spectral energy on the highest frequencies against the real images'."""
    share = _nyquist_share(real)
    return _nyquist_share(fake) / share if share > 0 else 1.0


def evaluation_values(inputs: np.ndarray, fake: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """The evaluation-based monitors of one direction, on 8-bit pictures ([N, H, W, C] uint8)."""
    return {"inversion": inversion(inputs, fake), "identity": identity(inputs, fake, real),
            "collapse": collapse(fake, real), "saturation": saturation(fake), "checkerboard": checkerboard(fake, real)}


class Health:
    """The monitors' states for one run: scalars (in the caller's default summary writer), RUN/health.jsonl rows
    and a log line on each change. (The functions above need no TensorFlow: the report reads this module.)"""

    def __init__(self, folder: Path, log: Callable[[str], None] = print, window: int = 5,
                 discriminators: tuple[tuple[str, ...], ...] = ()) -> None:
        self.path, self.log, self.window, self.discriminators = folder / FILE, log, window, discriminators
        self.fired: dict[str, bool] = {}
        self.low: list[float] = []

    def losses(self, step: int, losses: dict[str, float]) -> None:
        value = d_dominance(losses, self.discriminators)
        if value is None:
            return
        self.low = (self.low + [value])[-self.window:]
        worst = max(self.low) if len(self.low) == self.window else float("inf")  # near 0 all the window long
        import tensorflow as tf

        tf.summary.scalar("health/d_dominance", value, step=step)
        self._state(step, "d_dominance", "", worst, row=False)

    def evaluation(self, step: int, direction: str, values: dict[str, float]) -> None:
        import tensorflow as tf

        for name, value in values.items():
            tf.summary.scalar(f"health/{name}_{direction}", value, step=step)
            self._state(step, name, direction, value)

    def score(self, step: int, without_gain: int, diverged: float) -> None:
        """The held-out score's monitors: evaluations since its best, and the share of its gain lost."""
        import tensorflow as tf

        for name, value in (("stalled", float(without_gain)), ("diverging", diverged)):
            tf.summary.scalar(f"health/{name}", value, step=step)
            self._state(step, name, "", value)

    def _state(self, step: int, name: str, direction: str, value: float, row: bool = True) -> None:
        monitor, key = MONITORS[name], f"{name}_{direction}" if direction else name
        was = self.fired.get(key, False)
        fired = bool(not np.isnan(value) and (not monitor.clears(value) if was else monitor.fires(value)))
        changed = fired != was
        self.fired[key] = fired
        if changed:
            where = f" ({direction})" if direction else ""
            self.log(f"health: {name}{where} at step {step}: {monitor.means} ({value:.3g}); try: {monitor.fix}"
                     if fired else f"health: {name}{where} cleared at step {step} ({value:.3g})")
        if row or changed:
            record = {"step": step, "monitor": name, "direction": direction or None,
                      "value": round(value, 6) if np.isfinite(value) else None, "fired": fired}
            with open(self.path, "a", encoding="utf-8") as f:  # one short line a write: a kill loses at most it
                f.write(json.dumps(record) + "\n")


def read(folder: Path) -> dict[str, dict]:
    """The latest row of each monitor (and direction) in RUN/health.jsonl; unreadable lines are skipped."""
    latest: dict[str, dict] = {}
    try:
        lines = (folder / FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return latest
    for line in lines:
        try:
            row = json.loads(line)
            latest[f"{row['monitor']}_{row['direction']}" if row.get("direction") else row["monitor"]] = row
        except (ValueError, KeyError, TypeError):
            continue
    return latest
