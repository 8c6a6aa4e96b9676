"""The tf.data input pipeline: TFRecords of one domain → augmented batches in [-1, 1].

Images are decoded as their domain's kind (data/pixels.py: channels, stored type) into float32 in the
domain's units, augmented there, and mapped to [-1, 1] by the domain's fixed range.

The stream is a pure function of (files, seed, start index): epoch e shuffles with a seed derived
from (seed, e), and each image's random crop and flip use a stateless seed derived from (seed, e,
its index in the epoch). Resuming training at step s therefore needs no saved iterator: the stream
restarts at image s·batch_size, skipping records before they are decoded. The two CycleGAN domains
are read independently (unpaired) and zipped; pix2pix pairs come from one file, cropped and flipped alike.
"""
from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from cyclegan_tf.data.pixels import RGB, Kind, to_unit
from cyclegan_tf.data.records import ENCODED, PREFIX_A, PREFIX_B

PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
_EPOCH_STRIDE = 2**31  # keeps (epoch, index) seeds distinct for epochs of up to 2^31 images


@dataclass(frozen=True)
class Preprocess:
    """The official code's --preprocess, --load_size, --crop_size and --no_flip."""

    mode: str = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    multiple: int = 4  # scale_width and none round sides to multiples of this (what the generator needs)
    labels: int = 0  # a pair's input is a label map of this many channels: resized nearest-neighbour

    def __post_init__(self) -> None:
        if self.mode not in PREPROCESS_MODES:
            raise ValueError(f"preprocess {self.mode!r}: choose one of {', '.join(PREPROCESS_MODES)}")

    @property
    def fixed_size(self) -> bool:
        """Whether every output has the same shape (needed to batch more than one image)."""
        return self.mode in ("resize_and_crop", "crop", "scale_width_and_crop")


def decode(serialized: tf.Tensor, prefix: str = PREFIX_A, kind: Kind = RGB) -> tf.Tensor:
    """[H, W, C] of one record's image (`prefix` image/ or image_B/) in its stored type: JPEG/PNG/BMP/GIF
    bytes for 8-bit domains of 1 or 3 channels, PNG for 16-bit ones of up to 4, raw array bytes otherwise."""
    spec = {prefix + ENCODED: tf.io.FixedLenFeature([], tf.string),
            prefix + "format": tf.io.FixedLenFeature([], tf.string, default_value=b""),
            prefix + "height": tf.io.FixedLenFeature([], tf.int64, default_value=0),
            prefix + "width": tf.io.FixedLenFeature([], tf.int64, default_value=0)}
    feats = tf.io.parse_single_example(serialized, spec)
    data, c = feats[prefix + ENCODED], kind.channels
    if kind.dtype == "uint8" and c in (1, 3):
        img = tf.io.decode_image(data, channels=c, expand_animations=False)
    elif kind.png:
        img = tf.io.decode_png(data, channels=c, dtype=tf.as_dtype(kind.dtype))
    else:
        shape = tf.stack([tf.cast(feats[prefix + "height"], tf.int32), tf.cast(feats[prefix + "width"], tf.int32), c])
        img = tf.reshape(tf.io.decode_raw(data, tf.as_dtype(kind.dtype), little_endian=True), shape)
    img.set_shape([None, None, c])
    return img


def _resize_channels(img: tf.Tensor, h: tf.Tensor, w: tf.Tensor, nearest: int = 0) -> tf.Tensor:
    """`img` at h × w; its first `nearest` channels (a label map) by nearest neighbour, the rest bicubic."""
    # Shrinking large photos needs antialiasing (PIL's bicubic, used by the official code, has it);
    # enlarging does not, and the plain kernel is faster (docs/benchmarks.md).
    size = tf.stack([h, w])
    shrink = tf.reduce_any(size < tf.shape(img)[:2])
    rest = img[..., nearest:] if nearest else img
    rest = tf.cond(shrink, lambda: tf.image.resize(rest, size, method="bicubic", antialias=True),
                   lambda: tf.image.resize(rest, size, method="bicubic"))
    if not nearest:
        return rest
    return tf.concat([tf.image.resize(img[..., :nearest], size, method="nearest"), rest], axis=-1)


def _round_to(n: tf.Tensor, multiple: int) -> tf.Tensor:
    return tf.maximum(multiple, tf.cast(tf.round(tf.cast(n, tf.float32) / multiple), tf.int32) * multiple)


def augment(img: tf.Tensor, seed: tf.Tensor, cfg: Preprocess) -> tf.Tensor:
    """Resize/crop/flip one float image [H, W, C] (C may stack a pair, input first) as the official code
    does."""
    nearest = cfg.labels

    def _resize(img, h, w):
        return _resize_channels(img, h, w, nearest)

    shape = tf.shape(img)
    h, w = shape[0], shape[1]
    crop = cfg.crop_size
    if cfg.mode == "resize_and_crop":
        img = _resize(img, cfg.load_size, cfg.load_size)
    elif cfg.mode in ("scale_width", "scale_width_and_crop"):
        new_h = tf.maximum(crop, tf.cast(cfg.load_size * h / w, tf.int32))
        img = _resize(img, new_h, cfg.load_size)
    elif cfg.mode == "crop":
        # A picture smaller than the crop is scaled up just enough, instead of failing mid-training.
        scale = tf.maximum(1.0, crop / tf.cast(tf.minimum(h, w), tf.float32))
        img = tf.cond(scale > 1.0,
                      lambda: _resize(img, tf.cast(tf.math.ceil(tf.cast(h, tf.float32) * scale), tf.int32),
                                      tf.cast(tf.math.ceil(tf.cast(w, tf.float32) * scale), tf.int32)),
                      lambda: img)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    if cfg.mode in ("resize_and_crop", "crop", "scale_width_and_crop"):
        img = tf.image.stateless_random_crop(img, tf.stack([crop, crop, tf.shape(img)[2]]), seeds[0])
    else:  # scale_width, none: the generators need sides divisible by cfg.multiple
        shape = tf.shape(img)
        h4, w4 = _round_to(shape[0], cfg.multiple), _round_to(shape[1], cfg.multiple)
        img = tf.cond(tf.logical_and(h4 == shape[0], w4 == shape[1]), lambda: img, lambda: _resize(img, h4, w4))
    if cfg.flip:
        img = tf.image.stateless_random_flip_left_right(img, seeds[1])
    return img


def to_unit_range(img: tf.Tensor, kind: Kind = RGB) -> tf.Tensor:
    """The domain's units (bicubic may overshoot its range) → [-1, 1] float32."""
    return to_unit(img, kind)


def _records(files: list[str], seed: int, start: int, count: int, repeat: bool,
             shuffle_buffer: int) -> tf.data.Dataset:
    """(serialized record, [2] seed) pairs from image `start` on; epoch e is shuffled by (seed, e)."""
    files_t = tf.constant(files)
    buffer = max(1, min(shuffle_buffer, count))

    @tf.autograph.experimental.do_not_convert  # no Python control flow on tensors: converting costs start-up
    def epoch(e: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(files_t, seed=tf.stack([tf.cast(seed, tf.int64), e]))
        ds = tf.data.Dataset.from_tensor_slices(order).interleave(
            tf.data.TFRecordDataset, cycle_length=min(len(files), 4), block_length=1,
            num_parallel_calls=min(len(files), 4), deterministic=True)
        ds = ds.shuffle(buffer, seed=seed * 1_000_003 + e, reshuffle_each_iteration=False)
        return ds.enumerate().map(tf.autograph.experimental.do_not_convert(
            lambda i, rec: (rec, tf.stack([tf.cast(seed, tf.int64), e * _EPOCH_STRIDE + i]))))

    first = start // count
    epochs = tf.data.Dataset.range(first, 2**62 if repeat else first + 1)
    return epochs.flat_map(epoch).skip(start % count)


def domain_dataset(files: list[str], count: int, *, batch_size: int = 1, cfg: Preprocess = Preprocess(),
                   seed: int = 0, start: int = 0, repeat: bool = True, shuffle_buffer: int = 1024,
                   paired: bool = False, swap: bool = False, kinds: tuple[Kind, ...] = (RGB, RGB)
                   ) -> tf.data.Dataset:
    """Batches [B, H, W, C] float32 in [-1, 1] of one domain of kind `kinds[0]` (or ([B..], [B..]) pairs if
    `paired`: (A, B) of kinds (A's, B's), or (B, A) with `swap`).

    `count` is the number of records in `files`; `start` the number of images already consumed
    (step · batch_size when resuming). Variable-size modes (scale_width, none) need batch_size 1.
    """
    if batch_size > 1 and not cfg.fixed_size:
        raise ValueError(f"preprocess {cfg.mode!r} gives images of varying size: use batch_size 1")

    @tf.autograph.experimental.do_not_convert
    def load(rec: tf.Tensor, s: tf.Tensor) -> tf.Tensor | tuple[tf.Tensor, tf.Tensor]:
        a = tf.cast(decode(rec, PREFIX_A, kinds[0]), tf.float32)
        if not paired:
            return to_unit_range(augment(a, s, cfg), kinds[0])
        # Same crop and flip for both images of a pair: augment them stacked along channels, input first.
        b = tf.cast(decode(rec, PREFIX_B, kinds[-1]), tf.float32)
        (a, ka), (b, kb) = ((b, kinds[-1]), (a, kinds[0])) if swap else ((a, kinds[0]), (b, kinds[-1]))
        b = tf.cond(tf.reduce_all(tf.shape(a)[:2] == tf.shape(b)[:2]), lambda: b,
                    lambda: tf.image.resize(b, tf.shape(a)[:2], method="bicubic", antialias=True))
        ab = augment(tf.concat([a, b], axis=-1), s, cfg)
        return to_unit_range(ab[..., :ka.channels], ka), to_unit_range(ab[..., ka.channels:], kb)

    ds = _records(files, seed, start, count, repeat, shuffle_buffer)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # A record whose image does not decode (damaged after build_data.py checked it) is dropped instead of
    # stopping training at the same step on every resume; the stream stays a function of (files, seed, start).
    ds = ds.ignore_errors(log_warning=True)
    ds = ds.batch(batch_size, drop_remainder=repeat)
    options = tf.data.Options()
    # One file per domain is the norm, so shard by data, not by file, across workers.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return ds.with_options(options)


def unpaired_dataset(x_files: list[str], x_count: int, y_files: list[str], y_count: int, *, batch_size: int = 1,
                     cfg: Preprocess = Preprocess(), seed: int = 0, start_step: int = 0,
                     kinds: tuple[Kind, Kind] = (RGB, RGB)) -> tf.data.Dataset:
    """Endless (x, y) batches, each domain read independently (X of kind kinds[0], Y of kinds[1]), from
    training step `start_step` on."""
    start = start_step * batch_size
    x = domain_dataset(x_files, x_count, batch_size=batch_size, cfg=cfg, seed=2 * seed, start=start,
                       kinds=kinds[:1])
    y = domain_dataset(y_files, y_count, batch_size=batch_size, cfg=cfg, seed=2 * seed + 1, start=start,
                       kinds=kinds[1:])
    return tf.data.Dataset.zip((x, y)).prefetch(tf.data.AUTOTUNE)


def paired_dataset(files: list[str], count: int, *, batch_size: int = 1, cfg: Preprocess = Preprocess(),
                   seed: int = 0, start_step: int = 0, swap: bool = False,
                  kinds: tuple[Kind, Kind] = (RGB, RGB)) -> tf.data.Dataset:
    """Endless (input, target) batches of aligned pairs (pix2pix): (A, B), or (B, A) with `swap`; `kinds`
    are A's and B's."""
    ds = domain_dataset(files, count, batch_size=batch_size, cfg=cfg, seed=2 * seed, start=start_step * batch_size,
                        paired=True, swap=swap, kinds=kinds)
    return ds.prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(x_count: int, y_count: int, batch_size: int) -> int:
    """An epoch is max(|X|, |Y|) images, as in the official code."""
    return max(1, -(-max(x_count, y_count) // batch_size))
