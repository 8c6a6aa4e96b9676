"""Data: image folders → TFRecords (build_data.py) → the tf.data pipeline that feeds training.

`imagefiles` finds and decodes a user's image files; `convert` writes them as TFRecords (`records` is the
schema, vanhuyz's keys); `pipeline` reads records into augmented batches in [-1, 1]; `synthetic` and
`shapescapes` make the offline test and demo data.
"""
import importlib
import importlib.util
from typing import Any


def __getattr__(name: str) -> Any:
    """The names of the input pipeline's old module, `cyclegan_tf.data`, for one release."""
    from cyclegan_tf import compat

    if name.startswith("__") or importlib.util.find_spec(f"{__name__}.{name}") is not None:
        raise AttributeError(name)  # a submodule: the import system loads it (without TensorFlow)
    pipeline = importlib.import_module(compat.OLD_DATA_MODULE)
    if not hasattr(pipeline, name):
        raise AttributeError(f"module 'cyclegan_tf.data' has no attribute {name!r}")
    compat.moved(f"cyclegan_tf.data.{name}", f"{compat.OLD_DATA_MODULE}.{name}")
    return getattr(pipeline, name)
