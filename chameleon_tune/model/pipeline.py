"""The graph rewrites around tuning: what the imported model becomes before its tasks are
extracted, and how the tuned schedules are compiled into one library.

Every pass is TVM's own; this module only chooses and orders them, the way TVM's
``relax.pipeline.static_shape_tuning_pipeline`` does for CPUs:

- ``CanonicalizeBindings`` after decomposing batch norm, so that the operators after a
  convolution (batch-norm arithmetic, the residual add, ReLU) fuse into it instead of each
  making a pass of its own over memory.
- ``fold_batch_norm``: ``FoldBatchnormToConv2D`` folds an inference batch norm into the
  convolution's weights and a bias at compile time.
- ``prepack_weights``: ``AttachAttrLayoutFreeBuffers`` marks weights (constants) as free to
  change layout, so MetaSchedule's ``RewriteLayout`` lets each tuned kernel read its weights
  in the order its tiles walk them; after tuning, ``SplitLayoutRewritePreproc`` moves that
  re-layout out of the kernel and ``FoldConstant`` runs it once, at compile time, on the
  bound weights. The library is still called as ``vm["main"](input)``.
- ``layout``: ``"NHWC"`` (the default) converts every convolution to NHWC activations and
  HWIO weights (``ConvertLayout``; the operators between convolutions follow, transposes only
  at the model's input and output), so a tuned kernel's innermost loop runs along the output
  channels, contiguous in the weights, the output and the residual alike. On ResNet-18 after
  5 minutes of tuning: 9.1 ms against 14.7 ms in NCHW (BENCHMARKS.md section 20).
- ``winograd``: 3x3 stride-1 convolutions legalized to F(4x4, 3x3) Winograd (``winograd.py``,
  in either layout), their weight transform folded at compile time. Its kernels are faster but
  take about 3x longer to build per trial: on ResNet-18 in NHWC it was level with the direct
  convolution after 5 minutes of tuning and 1.37x ONNX Runtime after 30, where the direct one
  stays under ONNX Runtime (BENCHMARKS.md section 27).
- ``fast_math``: GELU's ``erf`` and softmax's ``exp`` computed by TVM's polynomial
  approximations (``FastMathTransform``: ``topi.fast_erf``, ``fast_exp``, ``fast_tanh``), which
  the compiler vectorizes, where the exact functions are one scalar libm call per element that
  no schedule can vectorize. GELU is first written out as ``x * (0.5 + 0.5 erf(x / sqrt 2))``
  and moved in front of the reshape that a PyTorch export puts after each linear layer, so it
  fuses into that matmul as its epilogue instead of running as a task of its own.

Extraction and compilation fuse with the same passes, so the tasks tuned are the functions
looked up (by structural hash) when the model is compiled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


LAYOUTS = ("NCHW", "NHWC")
"""The convolution layouts a pipeline can tune (the model's own input stays as imported)."""


@dataclass(frozen=True)
class Pipeline:
    fold_batch_norm: bool = True
    prepack_weights: bool = True
    winograd: bool = True
    layout: str = "NHWC"
    fast_math: bool = True

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}: one of {', '.join(LAYOUTS)}")

    def to_json(self) -> dict:
        return asdict(self)

    def prepare(self, mod):
        """Inference rewrites of the imported Relax module, before anything is fused."""
        import tvm
        from tvm import relax

        passes = [relax.transform.FoldBatchnormToConv2D(), relax.transform.FoldConstant()] if self.fold_batch_norm else []
        if self.layout == "NHWC":  # after folding: the batch-norm pattern is matched in NCHW
            passes += [
                tvm.transform.module_pass(_clip_as_min_max, opt_level=0, name="ClipAsMinMax"),
                relax.transform.ConvertLayout({"relax.nn.conv2d": ["NHWC", "HWIO"]}),
                relax.transform.FoldConstant(),
            ]
        if self.fast_math:
            passes += [
                tvm.transform.module_pass(_gelu_as_erf, opt_level=0, name="GeluAsErf"),
                relax.transform.FastMathTransform(),
            ]
        passes += [relax.transform.DecomposeOpsForInference(), relax.transform.CanonicalizeBindings()]
        return tvm.transform.Sequential(passes)(mod)

    def fuse(self, mod, target):
        """Legalize and fuse a prepared module into the tasks that are tuned."""
        import tvm

        with target:
            return tvm.transform.Sequential(self._fusion_passes(target))(mod)

    def _fusion_passes(self, target) -> list:
        from tvm import relax

        from .winograd import legalize_map

        passes = [
            *_backend(target).library_dispatch_passes(target),
            relax.transform.LegalizeOps(legalize_map() if self.winograd else None),
            relax.transform.AnnotateTIROpPattern(),
            relax.transform.FoldConstant(),
            relax.transform.FuseOps(),
            relax.transform.FuseTIR(),
        ]
        if self.prepack_weights:
            passes.append(relax.transform.AttachAttrLayoutFreeBuffers())
        return passes

    def compile(self, mod, target, database=None):
        """A Relax VM executable of a prepared module: TVM's default build (``database`` None),
        or fused as for extraction with ``database``'s schedules applied.

        Operators without a record keep TVM's default (untuned) schedule.
        """
        import tvm
        from tvm import relax

        if database is None:
            return tvm.compile(mod, target=target)
        after_tuning = []
        if self.prepack_weights:
            after_tuning = [relax.transform.SplitLayoutRewritePreproc(), relax.transform.FoldConstant()]

        @tvm.transform.module_pass(opt_level=3)
        def _tuned(mod, _ctx):
            passes = [
                *self._fusion_passes(target),
                relax.transform.MetaScheduleApplyDatabase(),
                *after_tuning,
                *_backend(target).dataflow_lower_passes(target),
                *_backend(target).finalize_passes(target),
            ]
            return tvm.transform.Sequential(passes)(mod)

        with target, database, tvm.transform.PassContext(opt_level=3):
            return relax.build(mod, target=target, relax_pipeline=_tuned)


def _rewrite_calls(mod, rewrites):
    """``mod`` with every Relax function rewritten by ``relax.dpl.rewrite_call`` for each
    (pattern, rewriter) pair, in order."""
    import tvm
    from tvm import relax

    out = tvm.IRModule(mod.functions, attrs=mod.attrs)
    for gv, func in mod.functions.items():
        if isinstance(func, relax.Function):
            for pattern, rewrite in rewrites:
                func = relax.dpl.rewrite_call(pattern, rewrite, func)
            out[gv] = func
    return out


def _gelu_as_erf(mod, _ctx):
    """``gelu(x)`` as ``x * (0.5 + 0.5 erf(x / sqrt 2))`` (its definition, and TVM's own
    legalization of it), so that ``FastMathTransform`` finds the ``erf``; and
    ``gelu(reshape(x))`` as ``reshape(gelu(x))``: a PyTorch export reshapes each linear layer's
    output back from 2-D, and GELU behind that reshape could not fuse into the matmul (BERT:
    a task of its own, 0.9 ms of a 6.8 ms layer)."""
    from tvm import relax
    from tvm.relax.dpl import is_op, wildcard

    def gelu(x):
        dtype = x.ty.dtype
        half = relax.const(0.5, dtype)
        erf = relax.op.erf(relax.op.multiply(x, relax.const(0.5**0.5, dtype)))
        return relax.op.multiply(x, relax.op.add(half, relax.op.multiply(erf, half)))

    x, shape = wildcard(), wildcard()
    after_reshape = is_op("relax.nn.gelu")(is_op("relax.reshape")(x, shape))
    plain = is_op("relax.nn.gelu")(x)
    return _rewrite_calls(
        mod,
        [
            (after_reshape, lambda _call, m: relax.op.reshape(gelu(m[x]), m[shape])),
            (plain, lambda _call, m: gelu(m[x])),
        ],
    )


def _clip_as_min_max(mod, _ctx):
    """``clip(x, lo, hi)`` (ReLU6 in MobileNets) as ``minimum(maximum(x, lo), hi)``.

    ``ConvertLayout`` has no layout rule for ``clip``: it wraps each one in a transpose back to
    NCHW and another to NHWC, and on MobileNetV2 those 35 transpose-clip-transpose kernels took
    half of the tuned model's time. Elementwise binary operators follow the layout and fuse into
    the convolution before them."""
    from tvm import relax
    from tvm.relax.dpl import is_op, wildcard

    x, lo, hi = wildcard(), wildcard(), wildcard()
    pattern = is_op("relax.clip")(x, lo, hi)

    def rewrite(call, matched):
        dtype = call.ty.dtype
        bound = [relax.const(float(matched[v].value), dtype) for v in (lo, hi)]
        return relax.op.minimum(relax.op.maximum(matched[x], bound[0]), bound[1])

    return _rewrite_calls(mod, [(pattern, rewrite)])


def _backend(target):
    """The module with ``target``'s pass lists. ``relax.pipeline`` dispatches CPU targets to
    ``relax.backend.cpu_generic``, whose package does not export them in TVM 0.27."""
    if target.kind.name == "llvm":
        from tvm.relax.backend.cpu_generic import pipeline
    else:
        from tvm.relax import pipeline
    return pipeline
