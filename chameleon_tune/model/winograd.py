"""Winograd convolution: 3x3 convolutions computed as F(4x4, 3x3), with a quarter of the multiplies.

A 3x3 stride-1 convolution over 4x4 output tiles becomes, per tile, an input transform, a
batched matrix product of 36 (6x6) small GEMMs over the channels, and an output transform:
36 multiply-adds per channel pair per tile instead of 144. The weight transform depends on
the weights alone, so it is a separate kernel that ``FoldConstant`` runs once, at compile time;
the tuned kernel reads the transformed weights, pre-packed like any other weight.

The computation is TVM's own (``topi``'s ``_conv2d_winograd_nchw_impl``, whose stages carry
MetaSchedule's CPU rules for the data and inverse transforms); this module decides which
convolutions take it and pads them to whole tiles. ``topi`` assumes the output is a multiple of
the tile: its tiles would read past the padded input of a 14x14 or 7x7 layer (a scheduled
kernel then returns garbage), so the input is padded to whole tiles and the output cropped.
"""

from __future__ import annotations

import importlib

TILE = 4
"""Output tile edge m of F(m x m, 3 x 3): 4 saves 4x the multiplies (2 would save 2.25x)."""
MIN_CHANNELS = 16
"""Fewest input and output channels for Winograd: the transforms cost O(C) per tile, the
multiplies saved O(C_in x C_out); with few channels (an image's 3) there is nothing to gain."""


def legalize_map() -> dict:
    """``LegalizeOps``' ``customize_legalize_map``: eligible ``relax.nn.conv2d`` to Winograd,
    every other convolution to TVM's default legalization."""
    return {"relax.nn.conv2d": _legalize_conv2d}


def eligible(call) -> bool:
    """A 3x3, stride-1, undilated, ungrouped float32 NCHW/OIHW convolution with enough channels,
    whose weights are a constant (so their transform is folded at compile time)."""
    import tvm

    attrs = call.attrs
    data, weight = call.args
    if not isinstance(weight, tvm.ir.GenericConst) or str(weight.ty.dtype) != "float32":
        return False
    out_channels, in_channels, kh, kw = (int(x) for x in weight.ty.shape)
    return (
        attrs.data_layout == "NCHW"
        and attrs.kernel_layout == "OIHW"
        and attrs.out_layout == "NCHW"
        and attrs.groups == 1
        and (kh, kw) == (3, 3)
        and [int(s) for s in attrs.strides] == [1, 1]
        and [int(d) for d in attrs.dilation] == [1, 1]
        and min(in_channels, out_channels) >= MIN_CHANNELS
        and str(data.ty.dtype) == "float32"
    )


def _legalize_conv2d(bb, call):
    import tvm

    if not eligible(call):
        return tvm.ir.Op.get("relax.nn.conv2d").get_attr("FLegalize")(bb, call)
    data, weight = call.args
    transformed = bb.emit(bb.call_te(weight_transform, weight, primfunc_name_hint="winograd_weight_transform"))
    padding = [int(p) for p in call.attrs.padding]
    return bb.call_te(conv2d_winograd, data, transformed, padding, primfunc_name_hint="conv2d_winograd")


def weight_transform(weight):
    """G w G^T for every (output, input) channel pair, laid out (alpha, alpha, C_in, C_out) as
    ``topi``'s pre-computed Winograd convolution reads it."""
    from tvm import te
    from tvm.topi.nn.winograd_util import winograd_transform_matrices

    out_channels, in_channels, kh, kw = (int(x) for x in weight.shape)
    alpha = TILE + kh - 1
    _, _, g = winograd_transform_matrices(TILE, kh, str(weight.dtype))
    r_kh = te.reduce_axis((0, kh), "r_kh")
    r_kw = te.reduce_axis((0, kw), "r_kw")
    return te.compute(
        (alpha, alpha, in_channels, out_channels),
        lambda eps, nu, ci, co: te.sum(weight[co, ci, r_kh, r_kw] * g[eps, r_kh] * g[nu, r_kw], axis=[r_kh, r_kw]),
        name="transform_weight",
    )


def conv2d_winograd(data, transformed_weight, padding: list[int]):
    """The convolution of ``data`` with already transformed weights, padded to whole tiles."""
    from tvm import te, topi

    winograd_nchw = importlib.import_module("tvm.topi.nn.conv2d")._conv2d_winograd_nchw_impl
    batch, _, height, width = (int(x) for x in data.shape)
    out_channels = int(transformed_weight.shape[3])
    top, left, bottom, right = padding if len(padding) == 4 else (*padding, *padding)
    out_h, out_w = height + top + bottom - 2, width + left + right - 2
    extra_h, extra_w = -out_h % TILE, -out_w % TILE
    padded = topi.nn.pad(data, (0, 0, top, left), (0, 0, bottom + extra_h, right + extra_w), name="pad_to_tiles")
    out = winograd_nchw(padded, transformed_weight, 1, 0, 1, str(data.dtype), TILE, pre_computed=True)
    if not (extra_h or extra_w):
        return out
    return te.compute((batch, out_channels, out_h, out_w), lambda n, c, h, w: out[n, c, h, w], name="crop_to_output")
