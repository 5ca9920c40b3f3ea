"""The examples in the library's docstrings run and show what they say (docs that run)."""

import doctest
import importlib
import pkgutil

import pytest

import gradwatch

MODULES = sorted(m.name for m in pkgutil.walk_packages(gradwatch.__path__, "gradwatch.")
                 if not m.name.startswith("gradwatch.integrations."))  # those need the frameworks


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) in {name} failed; run pytest --doctest-modules"
