"""What a domain's pixels are: how many channels, the type they are stored in, and the fixed range of values
that the networks see as [-1, 1].

A domain's `Kind` is decided once by build_data.py from its files and stored in every record; training reads
it from the records, keeps it in flags.json, and an export keeps it too, so outputs come back in the input's
units (Hounsfield units, reflectances, 16-bit counts). The range is fixed for the domain, never taken per
image: per-image scaling would map a dark scan and a bright one to the same picture and lose the units.
Values outside the range are clipped. Records written before kinds existed are 3-channel uint8 in [0, 255].
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cyclegan_tf.errors import UserError

DTYPES = ("uint8", "uint16", "float32")
MAX_CHANNELS = 64
FULL = {"uint8": (0.0, 255.0), "uint16": (0.0, 65535.0)}


@dataclass(frozen=True)
class Kind:
    """A domain's pixels: `channels`, the stored `dtype` and the range [lo, hi] mapped to [-1, 1], one value
    for every channel or one per channel."""

    channels: int = 3
    dtype: str = "uint8"
    lo: tuple[float, ...] = (0.0,)
    hi: tuple[float, ...] = (255.0,)

    @property
    def png(self) -> bool:
        """Whether PNG stores it losslessly (8- and 16-bit, 1 to 4 channels): then records and outputs use it."""
        return self.dtype in ("uint8", "uint16") and self.channels <= 4

    @property
    def rgb(self) -> bool:
        """8-bit RGB in [0, 255]: photos, what FID, JPEG and the browser page take."""
        return self == RGB

    @property
    def range_text(self) -> str:
        """The range as --X_range takes it: 'lo,hi', or 'lo,hi;lo,hi;…' per channel."""
        return ";".join(f"{_num(a)},{_num(b)}" for a, b in zip(self.lo, self.hi))

    def describe(self) -> str:
        shown = ";".join(f"{a:.6g},{b:.6g}" for a, b in zip(self.lo, self.hi))
        return f"{self.channels}-channel {self.dtype} in [{shown.replace(';', '] [')}]"

    def with_range(self, text: str, flag: str) -> Kind:
        lo, hi = parse_range(text, self.channels, flag)
        return Kind(self.channels, self.dtype, lo, hi)

    def lo_hi(self) -> tuple[np.ndarray, np.ndarray]:
        """lo and hi as float32 arrays that broadcast over [..., channels]."""
        return np.asarray(self.lo, np.float32), np.asarray(self.hi, np.float32)

    def to_stored(self, values: np.ndarray) -> np.ndarray:
        """Values in the domain's units as its stored type (integers rounded and clipped to the type)."""
        if self.dtype == "float32":
            return values.astype(np.float32)
        top = 255 if self.dtype == "uint8" else 65535
        return np.clip(np.round(values), 0, top).astype(self.dtype)


RGB = Kind()  # 8-bit RGB photos, and every record written before kinds existed


def _num(v: float) -> str:
    return f"{v:g}" if float(f"{v:g}") == v else repr(float(v))


def parse_range(text: str, channels: int, flag: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(lo, hi) of 'lo,hi' (every channel) or 'lo,hi;lo,hi;…' (one pair per channel); one line naming `flag`
    for anything else, a pair with lo ≥ hi, or values that are not finite."""
    pairs = [p for p in text.replace(" ", "").split(";") if p]
    if not pairs:
        raise UserError(f"{flag}={text}: give lo,hi (e.g. 0,4095 or -1000,2000), or lo,hi;lo,hi;… per channel")
    lo, hi = [], []
    for p in pairs:
        try:
            a, b = (float(v) for v in p.split(","))
        except ValueError:
            raise UserError(f"{flag}={text}: '{p}' is not lo,hi (two numbers)") from None
        if not (math.isfinite(a) and math.isfinite(b)):
            raise UserError(f"{flag}={text}: the range must be finite numbers")
        if a >= b:
            raise UserError(f"{flag}={text}: lo must be below hi ({p})")
        lo.append(a)
        hi.append(b)
    if len(pairs) not in (1, channels):
        raise UserError(f"{flag}={text}: {len(pairs)} ranges for {channels} channels (give one for all, or one each)")
    return tuple(lo), tuple(hi)


def kind(channels: int, dtype: str, range_text: str, flag: str) -> Kind:
    """A domain's kind from a run's options (input_nc, X_dtype, X_range): what a run written before kinds
    existed leaves empty is 8-bit RGB's."""
    channels, dtype = channels or 3, dtype or "uint8"
    if range_text:
        lo, hi = parse_range(range_text, channels, flag)
    elif dtype in FULL:
        lo, hi = (FULL[dtype][0],), (FULL[dtype][1],)
    else:
        raise UserError(f"{flag} is needed for {dtype} images (lo,hi)")
    return Kind(channels, dtype, lo, hi)


def to_unit(img, kind: Kind):
    """Values in the domain's units (a float32 tensor [..., C]) → [-1, 1], clipped to the range first. For
    8-bit RGB this is x / 127.5 - 1, bit for bit."""
    import tensorflow as tf

    lo, hi = kind.lo_hi()
    img = tf.clip_by_value(tf.cast(img, tf.float32), lo, hi)
    return (img - lo) / ((hi - lo) / 2) - 1.0


def from_unit(y, kind: Kind):
    """A network's output in [-1, 1] → float32 in the domain's units, within its range."""
    import tensorflow as tf

    lo, hi = kind.lo_hi()
    return tf.clip_by_value((tf.cast(y, tf.float32) + 1.0) * ((hi - lo) / 2) + lo, lo, hi)


def parse_bands(text: str, flag: str = "--display_bands") -> tuple[int, int, int] | None:
    """The three bands shown as red, green and blue ('3,2,1'); None for the default."""
    if not text:
        return None
    try:
        bands = tuple(int(b) for b in text.split(","))
    except ValueError:
        bands = ()
    if len(bands) != 3 or min(bands) < 0:
        raise UserError(f"{flag}={text}: give three band indices, e.g. 0,1,2 or 3,2,1")
    return bands  # type: ignore[return-value]


def display(img, bands: tuple[int, int, int] | None = None):
    """A tensor [..., C] in [-1, 1] as 3 channels people can look at: grey for 1 channel (and the first of 2),
    RGB as it is, and for more the chosen `bands` (default the first three)."""
    import tensorflow as tf

    c = img.shape[-1]
    if c == 3 and bands is None:
        return img
    if c < 3:
        return tf.repeat(img[..., :1], 3, axis=-1)
    chosen = [min(b, c - 1) for b in (bands or (0, 1, 2))]
    return tf.gather(img, chosen, axis=-1)


def of_export(loaded) -> tuple[Kind, Kind]:
    """(input, output) pixels of a loaded SavedModel of export_graph.py; 8-bit RGB for one written before
    they were stored."""
    if getattr(loaded, "input_channels", None) is None:
        return RGB, RGB
    found = []
    for side in ("input", "output"):
        lo, hi = (tuple(float(v) for v in getattr(loaded, f"{side}_{end}").numpy()) for end in ("lo", "hi"))
        if len(set(lo)) == 1 and len(set(hi)) == 1:
            lo, hi = lo[:1], hi[:1]
        found.append(Kind(int(getattr(loaded, f"{side}_channels").numpy()),
                          getattr(loaded, f"{side}_dtype").numpy().decode(), lo, hi))
    return found[0], found[1]
