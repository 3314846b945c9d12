"""ultralytics' model files read as data: weights-only ``.pt`` loads, architecture yamls without ``eval``.

Left to itself ultralytics (8.4) unpickles a ``.pt`` in full (``torch.load(weights_only=False)``: the pickle may run
any code) and builds a yaml architecture with ``eval`` of its ``activation`` and module names looked up in its
globals. It has an opt-in safe mode (``ULTRALYTICS_SAFE_LOAD``): ``torch.load(weights_only=True)`` against an
allow-list of its own model classes (``DetectionModel``, the layers of ``ultralytics.nn.modules`` and ``torch.nn``,
``IterableSimpleNamespace``, its loss classes), and yaml models built from known layers without ``eval``.

:func:`safe_ultralytics` switches that mode on for a block (and for DDP workers started inside it, which read the
variable at import) and turns its refusals into ``UntrustedFileError`` naming the file and ``trust_checkpoint``;
:func:`check_architecture` checks a yaml before ultralytics parses it: every layer one of
``ultralytics.nn.modules`` or ``torch.nn``, the activation one of :data:`ACTIVATIONS` with literal arguments.
Under ``trust_checkpoint=true`` both step aside (ultralytics loads as it would on its own), with a warning.
"""

from __future__ import annotations

import ast
import contextlib
import os
import pickle
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import ultralytics.nn.modules as yolo_modules
import ultralytics.nn.tasks as yolo_tasks
from torch import nn

from samqa_framework.utils.errors import DataFormatError, UntrustedFileError
from samqa_framework.utils.safe_torch import refusal
from samqa_framework.utils.trust import trusted, warn_trusted

SAFE_LOAD_ENV = "ULTRALYTICS_SAFE_LOAD"
# `activation:` of a model yaml: torch.nn's activation modules, written nn.<Name>(<literal args>) as ultralytics'
# own yamls do (e.g. nn.SiLU(), torch.nn.ReLU(), nn.LeakyReLU(0.1)).
ACTIVATIONS = frozenset({"CELU", "ELU", "GELU", "Hardsigmoid", "Hardswish", "Hardtanh", "Identity", "LeakyReLU",
                         "Mish", "PReLU", "ReLU", "ReLU6", "SELU", "SiLU", "Sigmoid", "Softplus", "Tanh"})


def _layer_class(name: str) -> type | None:
    """The class a yaml module name stands for in ultralytics' ``parse_model``, if it is a known layer."""
    if name.startswith("nn."):
        cls = getattr(nn, name[3:], None)
    elif name in yolo_modules.__all__:
        cls = getattr(yolo_tasks, name, None)  # parse_model looks names up in its own module
    else:
        cls = None
    return cls if isinstance(cls, type) and issubclass(cls, nn.Module) else None


def _activation_ok(spec: object) -> bool:
    """``[torch.]nn.<one of ACTIVATIONS>(<literal numbers / booleans>)``."""
    if not isinstance(spec, str):
        return False
    try:
        call = ast.parse(spec.strip(), mode="eval").body
    except SyntaxError:
        return False
    if not isinstance(call, ast.Call):
        return False
    func, path = call.func, []
    while isinstance(func, ast.Attribute):
        path.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return False
    path.append(func.id)
    values = [*call.args, *(kw.value for kw in call.keywords)]
    return (path[0] in ACTIVATIONS and path[1:] in (["nn"], ["nn", "torch"])
            and all(kw.arg is not None for kw in call.keywords)
            and all(isinstance(v, ast.Constant) and isinstance(v.value, int | float | bool) for v in values))


def check_architecture(model: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Refuse (``UntrustedFileError`` naming ``path`` and the yaml key) an architecture that names a layer outside
    ``ultralytics.nn.modules`` / ``torch.nn`` or an activation outside :data:`ACTIVATIONS`: ultralytics would look
    the one up in its module's globals and ``eval`` the other. A malformed one is a ``DataFormatError``."""
    if trusted():
        warn_trusted(path, "its architecture is not checked")
        return
    act = model.get("activation")
    if act is not None and not _activation_ok(act):
        raise UntrustedFileError(path, f"activation {act!r} is not one of nn.{{{', '.join(sorted(ACTIVATIONS))}}} "
                                       "with literal arguments")
    for section in ("backbone", "head"):
        layers = model.get(section)
        if not isinstance(layers, list) or not layers:
            raise DataFormatError(path, f"{section}: expected a list of layers [from, repeats, module, args]")
        for i, layer in enumerate(layers):
            if not isinstance(layer, list) or len(layer) != 4 or not isinstance(layer[3], list):
                raise DataFormatError(path, f"{section}[{i}]: expected [from, repeats, module, args], got {layer!r}")
            if not isinstance(layer[2], str) or _layer_class(layer[2]) is None:
                raise UntrustedFileError(path, f"{section}[{i}]: module {layer[2]!r} is not a layer of "
                                               "ultralytics.nn.modules or torch.nn (nn.<Name>)")


def _refusing(load: Any) -> Any:
    """ultralytics' ``torch_safe_load``, always in its safe mode, a refusal reported as ``UntrustedFileError``."""

    def torch_safe_load(weight: Any, safe_only: bool | None = None) -> Any:
        try:
            return load(weight, safe_only=True)
        except (TypeError, pickle.UnpicklingError) as exc:
            cause = exc if isinstance(exc, pickle.UnpicklingError) else exc.__cause__
            if not isinstance(cause, pickle.UnpicklingError):
                raise
            raise UntrustedFileError(weight, "cannot be loaded as an ultralytics checkpoint of its own model "
                                             f"classes: {refusal(cause)}") from None
        except (KeyError, EOFError, RuntimeError, ValueError, AttributeError) as exc:
            # torch and its zip reader fail with these on a file that is not a checkpoint at all (cut short, another
            # format): name the file instead of a traceback from inside the loader
            if isinstance(exc, DataFormatError):
                raise
            raise DataFormatError(weight, f"not a readable ultralytics checkpoint ({type(exc).__name__}: {exc})"
                                  ) from None

    return torch_safe_load


@contextlib.contextmanager
def safe_ultralytics(what: str | os.PathLike[str]) -> Iterator[None]:
    """ultralytics loads ``.pt`` files weights only and builds yaml models without ``eval`` inside the block (see
    the module docstring); ``what`` (the model or weights file) is named in the warning when trusted."""
    if trusted():
        warn_trusted(what, "ultralytics loads it in full (pickle) and evals its architecture")
        yield
        return
    saved = yolo_tasks.torch_safe_load, yolo_tasks.SAFE_LOAD, os.environ.get(SAFE_LOAD_ENV)
    # ultralytics registers the classes of each checkpoint it loads for the whole process: keep them to this block,
    # so that our own weights-only loads stay as strict as torch's defaults
    allowed = torch.serialization.get_safe_globals()
    yolo_tasks.torch_safe_load = _refusing(saved[0])
    yolo_tasks.SAFE_LOAD = True  # read when called: torch_safe_load's default, parse_model's no-eval path
    os.environ[SAFE_LOAD_ENV] = "1"  # DDP workers: a new process that imports ultralytics
    try:
        yield
    finally:
        yolo_tasks.torch_safe_load, yolo_tasks.SAFE_LOAD = saved[0], saved[1]
        if saved[2] is None:
            os.environ.pop(SAFE_LOAD_ENV, None)
        else:
            os.environ[SAFE_LOAD_ENV] = saved[2]
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(allowed)
