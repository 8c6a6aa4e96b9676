"""Code written against the old flat module names keeps working for one release, with a warning; the
tools' short names are the documented commands."""
import importlib
import subprocess
import sys
import warnings

import pytest
from conftest import ROOT

from cyclegan_tf import compat


@pytest.mark.parametrize("old, new", sorted(compat.MOVED.items()))
def test_an_old_name_is_the_module_at_its_new_place_with_a_warning(old: str, new: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} is now {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new) and module.__spec__.name == new


def test_old_from_imports_and_the_old_data_module() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from cyclegan_tf.datasets import shapescapes

        from cyclegan_tf import losses, runs  # noqa: F401  (the plug-in example's old imports)
    assert shapescapes.__name__ == "cyclegan_tf.data.shapescapes"
    from cyclegan_tf import data
    from cyclegan_tf.data import pipeline

    with pytest.warns(DeprecationWarning, match="cyclegan_tf.data.Preprocess is now cyclegan_tf.data.pipeline"):
        assert data.Preprocess is pipeline.Preprocess
    with pytest.raises(AttributeError):
        data.no_such_name  # noqa: B018


@pytest.mark.parametrize("tool", sorted(compat.TOOLS))
def test_the_tools_short_names_run(tool: str) -> None:
    r = subprocess.run([sys.executable, "-m", tool, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and f"python -m {tool}" in r.stdout and "Deprecation" not in r.stderr, r.stderr
