import numpy as np
import tensorflow as tf

from cyclegan_tf.models.pool import ImagePool


def _images(values: list[float]) -> tf.Tensor:
    return tf.constant(np.array(values, np.float32).reshape(-1, 1, 1, 1) * np.ones((1, 2, 2, 1), np.float32))


def test_fills_then_swaps_half_the_time() -> None:
    pool = ImagePool(4, (2, 2, 1))
    query = tf.function(pool.__call__)
    out = query(_images([1, 2, 3]), tf.constant([0, 0], tf.int64))
    np.testing.assert_array_equal(out[:, 0, 0, 0], [1, 2, 3])  # not full: returned as they come
    returned_old = 0
    seen = set(range(1, 4))
    for step in range(1, 60):
        new = 100.0 + step
        stored_before = set(pool.images.numpy()[:, 0, 0, 0][: int(pool.count.numpy())])
        (value,) = query(_images([new]), tf.constant([0, step], tf.int64)).numpy()[:, 0, 0, 0]
        assert value == new or value in stored_before
        returned_old += value != new
        seen |= set(pool.images.numpy()[:, 0, 0, 0])
    assert int(pool.count.numpy()) == 4
    assert 15 < returned_old < 45  # p = 1/2 once full
    assert len(seen) > 20  # new fakes keep entering the pool


def test_size_zero_passes_through() -> None:
    pool = ImagePool(0, (2, 2, 1))
    x = _images([5, 6])
    assert pool(x, tf.constant([0, 0], tf.int64)) is x


def test_pool_is_checkpointed(tmp_path) -> None:
    pool = ImagePool(3, (2, 2, 1))
    pool(_images([7, 8]), tf.constant([0, 0], tf.int64))
    path = tf.train.Checkpoint(pool=pool).save(str(tmp_path / "ck"))
    fresh = ImagePool(3, (2, 2, 1))
    tf.train.Checkpoint(pool=fresh).restore(path).assert_consumed()
    assert int(fresh.count.numpy()) == 2
    np.testing.assert_array_equal(fresh.images.numpy(), pool.images.numpy())


def test_each_replica_keeps_its_own_pool() -> None:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        pool = ImagePool(2, (2, 2, 1))

    @tf.function
    def step(x):
        def replica(x):
            rid = tf.distribute.get_replica_context().replica_id_in_sync_group
            return pool(x + tf.cast(rid, tf.float32) * 10, tf.constant([0, 0], tf.int64))
        return strategy.run(replica, args=(x,))

    out = step(_images([1]))
    assert [float(t.numpy()[0, 0, 0, 0]) for t in strategy.experimental_local_results(out)] == [1.0, 11.0]
    local = [v.numpy()[0, 0, 0, 0] for v in pool.images.values]
    assert local == [1.0, 11.0]
