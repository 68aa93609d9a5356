"""Whole models into Relax: the built-in networks, ``.pt2`` ExportedPrograms, ONNX files.

Each import also keeps the model's own runtime (PyTorch eager, or onnxruntime
for ONNX) as the reference the compiled model is verified and timed against.
Weights are bound into the Relax module as constants, so the compiled library
is self-contained.
"""

from __future__ import annotations

import logging
import os
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..measure.types import short_error

MODEL_SUFFIXES = (".pt2", ".onnx")

ArgSpec = tuple[tuple[int, ...], str]  # (shape, dtype) of one model input


class ModelError(ValueError):
    """The model cannot be found, read or imported: one line for the user."""


@dataclass(frozen=True)
class ImportedModel:
    """A model as a Relax module plus the runtime it came from."""

    name: str
    mod: Any
    """Relax IRModule, weights bound, batch norm etc. decomposed for inference."""
    inputs: list[ArgSpec]
    reference: Callable[[list[np.ndarray]], list[np.ndarray]]
    """The source runtime: input arrays in, flat list of output arrays out."""
    reference_name: str
    """``pytorch`` (eager) or ``onnxruntime``."""
    torch_module: Any = None
    """The PyTorch module (eval mode) the model came from, if it came from PyTorch."""


def load_model(spec: str, *, threads: int) -> ImportedModel:
    """A built-in model name or a ``.pt2`` / ``.onnx`` file; the reference runs on ``threads`` threads."""
    from .networks import MODELS  # imports torch: only when a model is loaded

    with warnings.catch_warnings():  # torch and the frontends warn on much that is no error
        warnings.simplefilter("ignore")
        return _load(spec, threads, MODELS)


def _load(spec: str, threads: int, builtins: tuple[str, ...]) -> ImportedModel:
    if spec in builtins:
        return _builtin(spec, threads)
    if not os.path.exists(spec):
        if spec.endswith(MODEL_SUFFIXES) or os.sep in spec:
            raise ModelError(f"model file {spec!r} does not exist")
        raise ModelError(f"unknown model {spec!r}; choices: {', '.join(builtins)}, or a .pt2 or .onnx file")
    if not os.path.isfile(spec) or not os.access(spec, os.R_OK):
        raise ModelError(f"model file {spec!r} is not a readable file")
    if spec.endswith(".pt2"):
        return _pt2(spec, threads)
    if spec.endswith(".onnx"):
        return _onnx(spec, threads)
    raise ModelError(f"{spec!r} is not a model file: expected a .pt2 (torch.export.save) or .onnx file")


# -- PyTorch ----------------------------------------------------------------------
def _builtin(name: str, threads: int) -> ImportedModel:
    import torch

    from .networks import build_model, input_shape

    torch.manual_seed(0)  # the same random weights on every run over one directory
    model = build_model(name)
    with torch.no_grad():
        program = torch.export.export(model, (torch.randn(input_shape(name)),))
    return _from_exported(name, program, model, threads)


def _pt2(path: str, threads: int) -> ImportedModel:
    import torch

    # torch.export.load logs a traceback of its own before raising on a non-archive.
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path!r} is not a model: not a torch.export archive")
    logger = logging.getLogger("torch.export")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        program = torch.export.load(path)
    except Exception as exc:  # noqa: BLE001 - a corrupt archive raises many types
        raise ModelError(f"{path!r} is not a loadable ExportedProgram: {short_error(exc)}") from None
    finally:
        logger.setLevel(level)
    return _from_exported(os.path.basename(path), program, program.module(), threads)


def _from_exported(name: str, program, module, threads: int) -> ImportedModel:
    from tvm.relax.frontend.torch import from_exported_program

    try:
        mod = from_exported_program(program, unwrap_unit_return_tuple=True)
    except AssertionError as exc:  # the frontend asserts on operators it has no converter for
        raise ModelError(f"{name}: TVM's PyTorch frontend cannot import it: {_last_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - any frontend failure is the model's
        raise ModelError(f"{name}: TVM cannot import it: {short_error(exc)}") from None

    return _imported(name, mod, torch_runner(module, threads), "pytorch", module)


def torch_runner(module, threads: int) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    """``module`` (eager or compiled) as numpy arrays in, flat list of numpy arrays out, on ``threads``."""
    import torch

    def run(arrays: list[np.ndarray]) -> list[np.ndarray]:
        if torch.get_num_threads() != threads:  # the PPO agent runs torch on one thread
            torch.set_num_threads(threads)
        with torch.no_grad():
            out = module(*(torch.from_numpy(a) for a in arrays))
        return [t.numpy() for t in (out if isinstance(out, (tuple, list)) else (out,))]

    return run


# -- ONNX -------------------------------------------------------------------------
def _onnx(path: str, threads: int) -> ImportedModel:
    import onnx
    import onnxruntime
    from tvm.relax.frontend.onnx import from_onnx

    name = os.path.basename(path)
    try:
        model = onnx.load(path)
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors and OS errors alike
        raise ModelError(f"{path!r} is not an ONNX model: {short_error(exc)}") from None
    if not model.graph.node:
        raise ModelError(f"{path!r} is not an ONNX model: its graph is empty")
    try:
        mod = from_onnx(model, keep_params_in_input=False)
    except Exception as exc:  # noqa: BLE001 - OpNotImplemented names the operators
        raise ModelError(f"{name}: TVM cannot import it: {_last_line(exc)}") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{name}: onnxruntime cannot load it: {_last_line(exc)}") from None
    input_names = [i.name for i in session.get_inputs()]

    def reference(arrays: list[np.ndarray]) -> list[np.ndarray]:
        return list(session.run(None, dict(zip(input_names, arrays))))

    return _imported(name, mod, reference, "onnxruntime")


# -- common -----------------------------------------------------------------------
def _imported(name: str, mod, reference, reference_name: str, torch_module=None) -> ImportedModel:
    from tvm import relax

    inputs = []
    for param in mod["main"].params:
        shape = [_static(d) for d in param.ty.shape]
        if None in shape:
            raise ModelError(f"{name}: input {param.name_hint!r} has a dynamic shape; export it with static shapes")
        inputs.append((tuple(shape), str(param.ty.dtype)))
    return ImportedModel(name, mod, inputs, reference, reference_name, torch_module)


def _static(dim) -> int | None:
    return int(dim) if hasattr(dim, "value") or isinstance(dim, int) else None


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
