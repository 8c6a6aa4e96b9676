"""The image pool of past fakes (Shrivastava et al. 2017), inside the graph.

The discriminators learn from a history of generated images, not only the latest ones. Per image:
while the pool is not full, store it and return it; once full, with probability 1/2 return a stored
image and put the new one in its place, else return the new one. The pool is made of variables, so
the whole training step stays one tf.function and the pool is checkpointed with the weights. Under a
distribution strategy each replica keeps its own pool (replica-local variables, as each GPU would in
the official code); a checkpoint stores the first replica's.
"""
from __future__ import annotations

import tensorflow as tf


class ImagePool(tf.Module):
    def __init__(self, size: int, image_shape: tuple[int, int, int], name: str | None = None) -> None:
        super().__init__(name=name)
        self.size = size
        if size > 0:
            local = dict(trainable=False, synchronization=tf.VariableSynchronization.ON_READ,
                         aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
            self.images = tf.Variable(tf.zeros([size, *image_shape]), name="images", **local)
            self.count = tf.Variable(0, dtype=tf.int32, name="count", **local)

    def _put(self, slot: tf.Tensor, image: tf.Tensor) -> None:
        # Replica-local variables have no scatter ops; rewriting the pool costs one memory copy of it,
        # negligible beside a training step.
        self.images.assign(tf.tensor_scatter_nd_update(self.images, [[slot]], image[None]))

    def __call__(self, images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Pooled images for a batch [B, H, W, C] (B static); `seed` is a stateless [2] seed."""
        if self.size == 0:
            return images
        images = tf.cast(images, tf.float32)
        draws = tf.random.stateless_uniform([images.shape[0], 2], seed)
        out = []
        for i in range(images.shape[0]):  # sequential: each image may change what the next one sees
            image, swap = images[i], draws[i, 0] > 0.5
            slot = tf.minimum(tf.cast(draws[i, 1] * self.size, tf.int32), self.size - 1)

            def store(image=image):
                self._put(self.count, image)
                self.count.assign_add(1)
                return image

            def exchange(image=image, swap=swap, slot=slot):
                old = tf.identity(self.images[slot])
                with tf.control_dependencies([old]):  # not swapping writes the old image back
                    self._put(slot, tf.where(swap, image, old))
                return tf.where(swap, old, image)

            out.append(tf.cond(self.count < self.size, store, exchange))
        return tf.stack(out)
