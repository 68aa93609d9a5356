"""The runtimes a user would otherwise deploy with, ready to be timed beside the tuned model.

A tuned model is only worth its tuning time if it beats what the user has in a
second without tuning: PyTorch eager, ``torch.compile`` (inductor) and ONNX
Runtime (CPU execution provider), each on the same thread count. Each is set up
here, run once on the test input and checked against the model's own reference
output; one that cannot run the model, or gives another answer, is left out
with a one-line reason, and the comparison goes on without it.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import numpy as np

from ..measure.types import short_error
from ..model.importer import torch_runner

PYTORCH = "pytorch"
TORCH_COMPILE = "torch.compile"
ONNXRUNTIME = "onnxruntime"
REFERENCES = (PYTORCH, TORCH_COMPILE, ONNXRUNTIME)

Run = Callable[[list[np.ndarray]], list[np.ndarray]]


def prepare_references(
    imported, names: list[str], threads: int, inputs: list[np.ndarray], expected: list[np.ndarray], check
) -> tuple[dict[str, Callable[[], object]], dict[str, str]]:
    """``(runs, notes)``: a no-argument call on ``inputs`` per reference that runs the model
    and agrees with ``expected`` (``check(outputs, expected, what)`` raises otherwise), and
    for every other name the reason it is left out."""
    runs, notes = {}, {}
    for name in names:
        try:
            run = _make(name, imported, threads, inputs)
            check(run(inputs), expected, f"{name}'s")
        except Exception as exc:  # noqa: BLE001 - any failure of a reference is reported, not fatal
            notes[name] = str(exc) if isinstance(exc, _Unavailable) else short_error(exc)
            continue
        runs[name] = _bound(run, inputs)
    return runs, notes


class _Unavailable(Exception):
    """This reference cannot run this kind of model (the message says why)."""


def _make(name: str, imported, threads: int, inputs: list[np.ndarray]) -> Run:
    if name == ONNXRUNTIME:
        return _onnxruntime(imported, threads, inputs)
    if imported.torch_module is None:
        raise _Unavailable(f"the model is not a PyTorch model ({imported.reference_name} is its runtime)")
    if name == PYTORCH:
        return imported.reference if imported.reference_name == PYTORCH else torch_runner(imported.torch_module, threads)
    if name == TORCH_COMPILE:
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = torch.compile(imported.torch_module, backend="inductor")
        return torch_runner(compiled, threads)
    raise ValueError(f"unknown reference {name!r}; choose from: {', '.join(REFERENCES)}")


def _onnxruntime(imported, threads: int, inputs: list[np.ndarray]) -> Run:
    if imported.reference_name == ONNXRUNTIME:
        return imported.reference
    if imported.torch_module is None:
        raise _Unavailable("no ONNX form of the model")
    import onnxruntime
    import torch

    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():  # the TorchScript exporter works offline; it warns that it is legacy
            warnings.simplefilter("ignore")
            torch.onnx.export(imported.torch_module, tuple(torch.from_numpy(a) for a in inputs), buffer, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - e.g. a torch.export program's module cannot be traced again
        raise _Unavailable(f"PyTorch cannot export the model to ONNX: {short_error(exc)}") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(arrays: list[np.ndarray]) -> list[np.ndarray]:
        return list(session.run(None, dict(zip(names, arrays))))

    return run


def _bound(run: Run, inputs: list[np.ndarray]) -> Callable[[], object]:
    return lambda: run(inputs)


def check_references(names) -> tuple[str, ...]:
    """The reference names, stripped, empty ones dropped; ValueError (one line) for an unknown one."""
    names = tuple(n.strip() for n in names if n.strip())
    unknown = [n for n in names if n not in REFERENCES]
    if unknown:
        raise ValueError(f"unknown reference {','.join(unknown)!r}; choose from: {', '.join(REFERENCES)}")
    return names
