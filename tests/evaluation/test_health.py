"""The health monitors (evaluation/health.py): each fires on the failure it watches for, made by hand from real
pictures, and stays silent on real translations-like pictures; a state change is one log line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cyclegan_tf.data import synthetic
from cyclegan_tf.evaluation import health


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    """Three sets of 8 different 64 px scene photos: inputs, real targets, and stand-in outputs."""
    return {k: synthetic.scenes(8, 64, seed)[1] for k, seed in (("inputs", 1), ("real", 2), ("fake", 3))}


def _fired(values: dict[str, float]) -> set[str]:
    return {k for k, v in values.items() if health.MONITORS[k].fires(v)}


def test_healthy_outputs_fire_nothing(photos) -> None:
    assert _fired(health.evaluation_values(photos["inputs"], photos["fake"], photos["real"])) == set()


def test_each_failure_fires_its_monitor(photos) -> None:
    x, real = photos["inputs"], photos["real"]
    checker = (np.indices(x.shape[1:3]).sum(0) % 2 * 60 - 30)[None, ..., None]
    failures = {
        "inversion": 255 - x,  # a colour-inverting G
        "identity": x.copy(),  # G returns its input
        "collapse": np.repeat(photos["fake"][:1], len(x), 0),  # one output for every input
        "saturation": np.where(x > 100, 255, 0).astype(np.uint8),  # outputs pinned to the range's ends
        "checkerboard": np.clip(photos["fake"].astype(int) + checker, 0, 255).astype(np.uint8),
    }
    for name, fake in failures.items():
        values = health.evaluation_values(x, fake, real)
        assert name in _fired(values), (name, values)


def test_state_changes_are_one_line_each_and_rows_of_health_jsonl(tmp_path: Path) -> None:
    lines: list[str] = []
    h = health.Health(tmp_path, lines.append, window=3)
    for step in range(1, 6):
        h.losses(step, {"G": 1.0, "D_X": 0.001, "D_Y": 0.002})
    h.losses(6, {"G": 1.0, "D_X": 0.3, "D_Y": 0.2})
    assert len(lines) == 2 and lines[0].startswith("health: d_dominance at step 3: a discriminator's loss")
    assert "try: a lower --D_learning_rate" in lines[0] and lines[1].startswith("health: d_dominance cleared at step 6")
    h.evaluation(10, "XtoY", {"inversion": -0.9, "collapse": 0.9})
    assert lines[-1].startswith("health: inversion (XtoY) at step 10")
    h.evaluation(20, "XtoY", {"inversion": -0.45})  # back above the threshold, not above where it clears: no line
    assert len(lines) == 3 and health.read(tmp_path)["inversion_XtoY"]["fired"]
    rows = [json.loads(line) for line in (tmp_path / "health.jsonl").read_text().splitlines()]
    assert [(r["monitor"], r["fired"]) for r in rows] == [("d_dominance", True), ("d_dominance", False),
                                                          ("inversion", True), ("collapse", False),
                                                          ("inversion", True)]
    latest = health.read(tmp_path)
    assert latest["inversion_XtoY"]["fired"] and not latest["d_dominance"]["fired"]


def test_diverging_is_the_share_of_the_gain_lost() -> None:
    assert health.diverging([300.0, 200.0, 100.0], lower_is_better=True) == 0.0  # at its best
    assert health.diverging([300.0, 100.0, 200.0], lower_is_better=True) == 0.5  # half the gain lost: FID
    assert health.diverging([20.0, 30.0, 21.0], lower_is_better=False) == 0.9  # PSNR, higher is better
    assert health.diverging([100.0, 120.0, 130.0], lower_is_better=True) == 0.0  # never gained: stalled says it
    assert health.diverging([449.7, 429.8, 447.4], lower_is_better=True) == 0.0  # a gain within FID's noise
    assert health.diverging([300.0, 100.0, float("nan")], lower_is_better=True) == float("inf")
    assert health.MONITORS["diverging"].fires(0.6) and not health.MONITORS["diverging"].fires(0.4)


def test_score_monitors_fire_and_clear_on_a_new_best(tmp_path: Path) -> None:
    lines: list[str] = []
    h = health.Health(tmp_path, lines.append)
    for step, waited in enumerate([0, 1, 2, 3, 4, 5, 6, 0], start=1):
        h.score(step * 100, waited, 0.0)
    assert [line.split(":")[1].strip() for line in lines] == ["stalled at step 600", "stalled cleared at step 800 (0)"]
    h.score(900, 1, 0.7)
    assert lines[-1].startswith("health: diverging at step 900") and "--checkpoint best" in lines[-1]


def test_d_dominance_watches_each_discriminator() -> None:
    """CycleGAN's D_X may win alone (F then learns nothing); pix2pix's D_real and D_fake are one D's halves."""
    assert health.d_dominance({"G": 1.0, "D_X": 0.01, "D_Y": 0.5}, (("D_X",), ("D_Y",))) == 0.01
    assert health.d_dominance({"G_GAN": 1.0, "D_real": 0.01, "D_fake": 0.5}) == pytest.approx(0.51)
    assert health.d_dominance({"G": 1.0, "cycle": 0.1}) is None


def test_a_run_whose_generators_hardly_learn_fires_d_dominance(tmp_path: Path) -> None:
    """A real run made to fail as bench/health_runs.py's g_slow: G at a ten-thousandth of D's learning rate,
    so both discriminators soon tell real from fake every time; the monitor fires, in the log and the rows."""
    from conftest import texture_records

    from cyclegan_tf.config import TrainConfig
    from cyclegan_tf.training.loop import train

    data = texture_records(tmp_path, 6)
    run = tmp_path / "run"
    cfg = TrainConfig(X=data["X"], Y=data["Y"], checkpoint_dir=str(run), image_size=32, load_size=36,
                      netG="resnet_6blocks", ngf=4, ndf=8, pool_size=0, log_every=5, summary_every=1000,
                      save_every=1000, max_steps=150, learning_rate=2e-7, D_learning_rate=2e-3)
    assert train(cfg) == 0
    rows = [json.loads(line) for line in (run / "health.jsonl").read_text().splitlines()]
    fired = [r["step"] for r in rows if r["monitor"] == "d_dominance" and r["fired"]]
    assert fired and fired[0] >= 25, rows  # not before its window of 5 logs is full
