"""Tolerances for comparing two float computations of the same quantity, argued from the computation.

Two float32 evaluations of one sum of n products (a convolution output, a matrix product, a gradient)
differ only by rounding, in an order the kernel chooses: oneDNN blocks and vectorises the sums one way on
AVX2, another on AVX-512 or AMX, and Winograd's transforms add operations of their own. Each evaluation is
within γ_n · Σ|aᵢbᵢ| of the exact sum, γ_n = n·u / (1 − n·u) with u = 2⁻²⁴ (Higham, *Accuracy and
Stability of Numerical Algorithms*, 2002, §3.1), so two of them are within twice that. Σ|aᵢbᵢ| is the same
operation applied to the inputs' absolute values, which the tests compute with the plain op.

A tolerance from this bound holds on every CPU (it is a worst case, typically 10–100× the difference
seen), and a wrong computation still fails it: its error is of the order of Σ|aᵢbᵢ| itself, not of n·u
times it. docs/decisions.md ("Numerical tolerances in the tests") says how each kind of test uses these.
"""
from __future__ import annotations

import numpy as np

U32 = 2.0**-24  # unit roundoff of float32 (round to nearest)
U_BF16 = 2.0**-8  # of bfloat16: 8 significant bits


def gamma(n: int, u: float = U32) -> float:
    """Higham's γ_n: the relative error bound of a sum of n products, each rounded once per operation."""
    return n * u / (1 - n * u)


def assert_same_sums(actual, expected, magnitude, terms: int, growth: float = 1.0, err_msg: str = "") -> None:
    """`actual` and `expected` are two float32 evaluations of sums of `terms` products whose absolute values
    add up to `magnitude` (broadcastable to them); `growth` bounds how much intermediate transforms enlarge
    the values the rounding acts on (1 for a direct sum)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{err_msg} shapes {actual.shape} and {expected.shape}"
    bound = 2 * gamma(terms) * growth * np.asarray(magnitude, np.float64) + np.finfo(np.float32).tiny
    ratio = np.abs(actual - expected) / bound
    worst = np.unravel_index(np.argmax(ratio), ratio.shape)
    scale = np.broadcast_to(magnitude, ratio.shape)[worst]
    assert ratio[worst] <= 1, (f"{err_msg} differ beyond float32 rounding: at {worst} "
                               f"|{actual[worst]} - {expected[worst]}| > 2·γ_{terms}·{growth}·{scale}")


def elementwise_rtol(operations: int, ulps: float = 4.0, u: float = U32) -> float:
    """The relative tolerance of a value computed by a chain of `operations` elementwise float32 operations,
    each within `ulps` units in the last place (Eigen's and oneDNN's vectorised exp, log and tanh are
    within a few; + − × ÷ and sqrt within half of one), against an exact reference."""
    return operations * ulps * 2 * u


def network_atol(model, winograd: bool = True) -> float:
    """The tolerance for two float32 evaluations of a whole network whose activations are of order 1 (each
    conv followed by a normalisation, the output by tanh): every conv layer adds at most 2·γ_n relative to
    Σ|aᵢbᵢ|, which for sums of n terms of either sign is typically √n times the value (a model, not a
    worst case: no finite bound holds through a normalisation of a nearly constant channel). `winograd`:
    whether one of the two evaluations runs the WinogradConv2D layers by Winograd (at inference, fp32)."""
    import keras

    total = 0.0
    for layer in _layers(model):
        if isinstance(layer, keras.layers.Conv2DTranspose):  # kernel [kh, kw, out, in]
            n = int(np.prod(layer.kernel.shape[:2])) * int(layer.kernel.shape[-1])
        elif isinstance(layer, keras.layers.Conv2D | keras.layers.Dense):
            n = int(np.prod(layer.kernel.shape[:-1]))
        else:
            continue
        # Winograd's transforms enlarge the rounded values up to 81·C·max|x|·max|k| against the 9·C
        # products of the direct sum (tests/networks/test_kernels.py): up to 9× a direct conv's error.
        growth = 9 if winograd and type(layer).__name__ == "WinogradConv2D" else 1
        total += 2 * gamma(n) * np.sqrt(n) * growth
    return total


def _layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)
