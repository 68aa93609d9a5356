"""Kernels with matmul.64's signature that fail in every way a tuner must survive."""

from __future__ import annotations


def failing_module(kind: str):
    """An IRModule C = f(A, B) on 64x64 float32 that fails as ``kind`` says."""
    import tvm
    from tvm import te, tirx

    A = te.placeholder((64, 64), name="A")
    B = te.placeholder((64, 64), name="B")
    if kind == "build":  # uses a variable that is not an argument: rejected by the compiler
        free = te.var("free")
        body = lambda i, j: A[i, j] * free.astype("float32")  # noqa: E731
    elif kind == "crash":  # abort() inside the kernel kills the process
        body = lambda i, j: A[i, j] + tirx.call_extern("float32", "abort")  # noqa: E731
    elif kind == "hang":  # sleeps far past any timeout
        body = lambda i, j: A[i, j] + tirx.call_extern("int32", "sleep", 1000).astype("float32")  # noqa: E731
    elif kind == "wrong":  # runs fine, computes the wrong thing (a sum, not a product)
        body = lambda i, j: A[i, j] + B[i, j]  # noqa: E731
    else:
        raise ValueError(kind)
    C = te.compute((64, 64), body, name="C")
    return tvm.IRModule({"main": te.create_prim_func([A, B, C])})
