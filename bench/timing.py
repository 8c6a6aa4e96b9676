"""The timing protocol every bench/ script that times a call shares: warm-up calls, then the median.

Plain Python, so that bench/official_reference.py can use it from an environment without cyclegan_tf.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_calls(fn: Callable[[], object], runs: int, warmup: int = 2) -> list[float]:
    """Seconds of each of `runs` calls of `fn` (which must wait for its result) after `warmup` calls."""
    times = []
    for i in range(runs + warmup):
        start = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def summary(times: list[float], per: str, batch_size: int) -> dict[str, float]:
    """Median, min and max seconds `per` call (step, batch), and images/s at the median."""
    med = statistics.median(times)
    return {f"sec_per_{per}_median": round(med, 4), f"sec_per_{per}_min": round(min(times), 4),
            f"sec_per_{per}_max": round(max(times), 4), "images_per_sec": round(batch_size / med, 3)}
