"""How a served instance becomes a prediction function.

A loader is ``function(instance: ModelInstance) -> predictor``, named on the command line as
``module:function`` (the module is imported from the working directory first, as uvicorn
does). A predictor is called with the request's rows (a list of JSON objects) and returns one
prediction per row: either a callable, or an object with a ``predict`` method. Without a
loader, an artifact-kind instance's artifact is the predictor.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from flowpolicy.errors import FlowpolicyError
from flowpolicy.runtime.loading import ModelInstance, ModelLoadError

Loader = Callable[[ModelInstance], Any]
PredictFunction = Callable[[list], Sequence]


def import_loader(spec: str) -> Loader:
    """The function ``module:function`` names; a bad spec, a module that does not import or a
    missing function is a FlowpolicyError (exit 2)."""
    module_name, sep, function_name = spec.partition(":")
    if not sep or not module_name or not function_name:
        raise FlowpolicyError(f"--loader {spec!r}: expected module:function, e.g. serving:load")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FlowpolicyError(f"--loader {spec!r}: cannot import {module_name!r} (from {cwd} "
                              f"or the Python path): {exc}") from exc
    loader = getattr(module, function_name, None)
    if not callable(loader):
        raise FlowpolicyError(f"--loader {spec!r}: {module.__name__} has no function "
                              f"{function_name!r}")
    return loader


def default_loader(instance: ModelInstance) -> Any:
    """The instance's Metaflow artifact, served as it is."""
    return instance.artifact()


def predict_function(predictor: Any, instance: ModelInstance) -> PredictFunction:
    """``predictor`` as a function of the rows: itself if callable, else its ``predict``."""
    method = getattr(predictor, "predict", None)
    if callable(method):
        return method
    if callable(predictor):
        return predictor
    raise ModelLoadError(
        f"{instance.describe()} loaded as a {type(predictor).__name__}, which is neither "
        "callable nor has a predict() method: give a loader (--loader module:function) that "
        "returns a function of the rows")
