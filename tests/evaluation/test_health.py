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
    assert len(lines) == 2 and lines[0].startswith("health: d_dominance at step 3: the discriminators' losses")
    assert "try: a lower --learning_rate" in lines[0] and lines[1].startswith("health: d_dominance cleared at step 6")
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
