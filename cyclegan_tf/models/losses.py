"""GAN, reconstruction and feature-matching losses, per example, so that a training step can average
them over the global batch.

Every function returns a [B] tensor (the mean over the other axes); `tf.nn.compute_average_loss` then
divides by the global batch. A discriminator's output may be one score map [B, h, w, 1], or — a
multi-scale D as pix2pixHD's — a list of scales, each a list of intermediate features ending with the
score map; the GAN loss is then summed over the scales (as pix2pixHD's GANLoss does).

The modes of DISCRIMINATOR_ONLY (focal, ghmc) change D's objective only; the generator's adversarial term
stays the non-saturating BCE (vanilla) under them (docs/decisions.md, "D losses: focal and GHM-C").
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import keras
import tensorflow as tf

from cyclegan_tf.options import GAN_MODES

Output = tf.Tensor | Sequence  # one score map, or scales of [features..., score]


def _mean(t: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.cast(t, tf.float32), axis=list(range(1, t.shape.rank)))


def scores(output: Output) -> list[tf.Tensor]:
    """The score maps of a discriminator's output, one per scale."""
    if isinstance(output, (list, tuple)):
        return [s[-1] if isinstance(s, (list, tuple)) else s for s in output]
    return [output]


# gan_mode values that only D's objective uses: the generator is judged by vanilla's BCE under them.
DISCRIMINATOR_ONLY = ("focal", "ghmc")


def _gan_loss_one(pred: tf.Tensor, real: bool, mode: str, real_label: float, gamma: float,
                  alpha: float) -> tf.Tensor:
    pred = tf.cast(pred, tf.float32)
    if mode == "lsgan":  # least squares (Mao et al.), the paper's choice
        return _mean(tf.square(pred - (real_label if real else 0.0)))
    if mode == "vanilla":
        labels = tf.fill(tf.shape(pred), real_label if real else 0.0)
        return _mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=pred))
    if mode == "wgangp":
        return _mean(-pred if real else pred)
    if mode == "focal":
        if real and real_label != 1.0:
            raise ValueError(f"gan_mode focal needs hard labels: real_label {real_label} (1 only)")
        return _mean(focal(pred, real, gamma, alpha))
    if mode == "ghmc":
        raise ValueError("gan_mode ghmc judges real and fake outputs together: use ghmc_loss")
    raise ValueError(f"gan_mode {mode!r}: choose one of {', '.join(GAN_MODES)}")


def gan_loss(pred: Output, real: bool, mode: str = "lsgan", real_label: float = 1.0, focal_gamma: float = 2.0,
             focal_alpha: float = 0.5) -> tf.Tensor:
    """How far the discriminator's scores `pred` are from saying real (or fake), summed over scales."""
    return tf.add_n([_gan_loss_one(p, real, mode, real_label, focal_gamma, focal_alpha) for p in scores(pred)])


def focal(logits: tf.Tensor, real: bool, gamma: float = 2.0, alpha: float = 0.5) -> tf.Tensor:
    """The focal loss of Lin et al. 2017 per element, from logits: −α_t (1 − p_t)^γ log p_t, where p_t is
    σ(logit) for a real target and 1 − σ(logit) for a fake one, α_t = α for real and 1 − α for fake. With
    z = ±logit, log p_t = log σ(z) and (1 − p_t)^γ = exp(γ log σ(−z)): finite for any logit."""
    z = tf.cast(logits, tf.float32) * (1.0 if real else -1.0)
    alpha_t = alpha if real else 1.0 - alpha
    return -alpha_t * tf.exp(gamma * tf.math.log_sigmoid(-z)) * tf.math.log_sigmoid(z)


def _bin(g: tf.Tensor, bins: int) -> tf.Tensor:
    """The bin i of each g in [0, 1] with edges[i] ≤ g < edges[i + 1], edges = (0, 1/bins, …, 1) in float32
    as mmdetection's (whose last edge, 1 + 1e-6, puts g = 1 in the last bin): ⌊g·bins⌋, corrected where its
    rounding crosses an edge."""
    edges = tf.constant([i / bins for i in range(bins + 1)], tf.float32)
    i = tf.clip_by_value(tf.cast(tf.floor(g * bins), tf.int32), 0, bins - 1)
    i += tf.cast(g >= tf.gather(edges, i + 1), tf.int32) - tf.cast(g < tf.gather(edges, i), tf.int32)
    return tf.clip_by_value(i, 0, bins - 1)


def ghmc_loss(real: Output, fake: Output, acc_sum: tf.Variable, momentum: float = 0.75,
              real_label: float = 1.0) -> tuple[tf.Tensor, tf.Tensor]:
    """D's GHM-C loss (Li, Liu, Wang, AAAI 2019, as the authors' mmdetection GHMC) on its outputs for real
    and for fake inputs, per example: ([B] real term, [B] fake term), summed over scales.

    Per scale, the score maps of real and fake inputs are one binary classification problem (targets
    real_label and 0) of `tot` elements over the global batch. Each element's gradient norm
    g = |σ(logit) − target| (held constant) falls in one of `bins` equal bins of [0, 1] (the last holds
    g = 1). For every non-empty bin i, acc_sum[i] ← m·acc_sum[i] + (1 − m)·count_i (m = 0: the counts;
    empty bins keep theirs); an element's weight is tot / acc_sum[i] / n, n the number of non-empty bins;
    the loss Σ weight·BCE / tot. Here each term is the per-example mean of weight·BCE over its own map:
    halved and averaged over the global batch (as D's terms are), real + fake is exactly Σ/tot.

    `acc_sum` [scales, bins] holds the running counts and is updated in place. Under tf.distribute the
    counts are summed over the replicas first (in the replica context), so that every replica computes
    the statistics of the global batch and assigns the same value (aggregation ONLY_FIRST_REPLICA)."""
    bins = int(acc_sum.shape[-1])
    pairs = list(zip(scores(real), scores(fake)))
    if len(pairs) != acc_sum.shape[0]:
        raise ValueError(f"ghmc: {len(pairs)} scales of scores, statistics for {acc_sum.shape[0]}")
    logits, bin_of, counts = [], [], []
    for r, f in pairs:
        scale = [(tf.cast(r, tf.float32), real_label), (tf.cast(f, tf.float32), 0.0)]
        g = [tf.abs(tf.sigmoid(tf.stop_gradient(x)) - target) for x, target in scale]
        index = [_bin(t, bins) for t in g]
        flat = tf.concat([tf.reshape(i, [-1]) for i in index], 0)
        counts.append(tf.math.unsorted_segment_sum(tf.ones_like(flat, tf.float32), flat, bins))
        logits.append(scale)
        bin_of.append(index)
    counts = tf.stack(counts)  # [scales, bins], of this replica
    context = tf.distribute.get_replica_context()
    if context is not None:  # None in cross-replica context: the counts are already the batch's
        counts = context.all_reduce(tf.distribute.ReduceOp.SUM, counts)
    tot = tf.maximum(tf.reduce_sum(counts, -1, keepdims=True), 1.0)
    filled = counts > 0
    acc = tf.where(filled, momentum * acc_sum + (1.0 - momentum) * counts, acc_sum)
    acc_sum.assign(acc)
    n = tf.maximum(tf.reduce_sum(tf.cast(filled, tf.float32), -1, keepdims=True), 1.0)
    weights = tf.where(filled, tf.math.divide_no_nan(tot, acc), 0.0) / n  # [scales, bins]
    terms = [[], []]
    for s, (scale, index) in enumerate(zip(logits, bin_of)):
        for k, ((x, target), i) in enumerate(zip(scale, index)):
            w = tf.gather(weights[s], i)
            terms[k].append(_mean(w * tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(x), target),
                                                                               logits=x)))
    return tf.add_n(terms[0]), tf.add_n(terms[1])


def l1(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Mean absolute difference per example (cycle, identity and L1 losses)."""
    return _mean(tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32)))


def feature_matching(real: Sequence, fake: Sequence, spatial_mean: bool = False) -> tf.Tensor:
    """pix2pixHD's feature-matching loss: L1 between D's intermediate features on fake and on real inputs
    (real ones held constant), weighted 4/(features per scale) × 1/(scales) as the official code does
    (4/(n_layers_D + 1) × 1/num_D); `real` and `fake` are D outputs as lists of scales, each ending with
    its score map, which is not a feature. Multiply by λ_feat. With `spatial_mean` the features are first
    averaged over H and W (Salimans et al. 2016): the form for unpaired images, whose locations do not
    correspond."""
    def pooled(t: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(tf.cast(t, tf.float32), axis=[1, 2]) if spatial_mean else t

    total = []
    for real_scale, fake_scale in zip(real, fake):
        features = list(zip(real_scale[:-1], fake_scale[:-1]))
        weight = 4.0 / len(features) / len(real)
        total += [weight * l1(pooled(f), tf.stop_gradient(pooled(r))) for r, f in features]
    return tf.add_n(total)


# pix2pixHD's VGG loss: VGG19's relu1_1 … relu5_1 (Keras' block{i}_conv1 include their ReLU), weighted.
VGG_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
VGG_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
VGG_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"  # what keras.applications.VGG19 downloads
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


def vgg_weights_path(given: str = "") -> str | None:
    """The VGG19 ImageNet weights file to use: `given`, else Keras' cached download (KERAS_HOME or ~/.keras,
    and /tmp/.keras where Keras falls back); None when there is none (these machines cannot download it)."""
    if given:
        return given
    homes = [os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras")), "/tmp/.keras"]
    found = [os.path.join(h, "models", VGG_FILE) for h in homes if os.path.isfile(os.path.join(h, "models", VGG_FILE))]
    return found[0] if found else None


def vgg19_features(weights_path: str) -> keras.Model:
    """VGG19 (no top) with the weights of `weights_path` (Keras' ImageNet file, or any file `save_weights`
    wrote for this architecture), returning the features of VGG_LAYERS; frozen."""
    vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    vgg.load_weights(weights_path)
    vgg.trainable = False
    return keras.Model(vgg.input, [vgg.get_layer(n).output for n in VGG_LAYERS], name="vgg19_features")


def vgg_perceptual(features: keras.Model, fake: tf.Tensor, real: tf.Tensor) -> tf.Tensor:
    """pix2pixHD's VGG loss per example: Σ_l w_l·L1(VGG_l(fake), VGG_l(real)), real held constant. Images in
    [-1, 1] are given to VGG as its Keras (Caffe) weights expect: BGR, 0…255, mean subtracted. (The official
    code feeds [-1, 1] to torchvision's VGG, whose weights expect a normalised RGB of about that range.)"""
    def caffe(x: tf.Tensor) -> tf.Tensor:
        return (tf.cast(x, tf.float32)[..., ::-1] + 1.0) * 127.5 - tf.constant(_CAFFE_BGR_MEAN)

    # Two passes, not one over fake ‖ real: the backward pass then runs over the fakes alone.
    targets = [tf.stop_gradient(t) for t in features(caffe(real))]
    return tf.add_n([w * l1(f, t) for w, f, t in zip(VGG_WEIGHTS, features(caffe(fake)), targets)])


def gradient_penalty(discriminator, real: tf.Tensor, fake: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """WGAN-GP (Gulrajani et al.): (‖∇D(x̂)‖₂ − 1)² on random interpolates x̂ of real and fake, per example.
    For a multi-scale D, ∇ of the sum of every scale's scores."""
    eps = tf.random.stateless_uniform([tf.shape(real)[0], 1, 1, 1], seed)
    mixed = eps * real + (1.0 - eps) * fake
    with tf.GradientTape() as tape:
        tape.watch(mixed)
        score = tf.add_n([tf.reduce_sum(tf.cast(s, tf.float32)) for s in scores(discriminator(mixed, training=True))])
    grad = tf.reshape(tape.gradient(score, mixed), [tf.shape(real)[0], -1])
    return tf.square(tf.norm(grad + 1e-16, axis=1) - 1.0)


def patch_nce(q: tf.Tensor, k: tf.Tensor, temperature: float = 0.07,
              negatives_from_batch: bool = False) -> tf.Tensor:
    """CUT's PatchNCE loss (Park et al. 2020), per example: q, k are [B, P, C] unit-length features of the
    same P locations in the output (queries) and the input (keys, held constant). Each query's positive
    is its own location's key; its negatives are the other P − 1 keys of the same image (or of the whole
    batch with `negatives_from_batch`). As the official code, the positive is also the first logit, and
    the diagonal of the negatives is set to −10 instead of removed. Cross-entropy at temperature T,
    averaged over the P queries."""
    q, k = tf.cast(q, tf.float32), tf.stop_gradient(tf.cast(k, tf.float32))
    batch, patches = tf.shape(q)[0], tf.shape(q)[1]
    if negatives_from_batch:
        q, k = tf.reshape(q, [1, -1, q.shape[-1]]), tf.reshape(k, [1, -1, k.shape[-1]])
    similarity = tf.matmul(q, k, transpose_b=True)  # [b, n, n]; the diagonal holds the positives
    positives = tf.linalg.diag_part(similarity)
    negatives = tf.linalg.set_diag(similarity, tf.fill(tf.shape(positives), -10.0))
    logits = tf.concat([positives[..., None], negatives], -1) / temperature
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.zeros(tf.shape(positives), tf.int32), logits)
    return tf.reduce_mean(tf.reshape(loss, [batch, patches]), axis=1)
