"""Winograd convolution: 3x3 convolutions computed as F(4x4, 3x3), with a quarter of the multiplies.

A 3x3 stride-1 convolution over 4x4 output tiles becomes, per tile, an input transform, a
batched matrix product of 36 (6x6) small GEMMs over the channels, and an output transform:
36 multiply-adds per channel pair per tile instead of 144. The weight transform depends on
the weights alone, so it is a separate kernel that ``FoldConstant`` runs once, at compile time;
the tuned kernel reads the transformed weights, pre-packed like any other weight.

The computation is TVM's own: in NCHW ``topi``'s ``_conv2d_winograd_nchw_impl``; in NHWC the
same stages as ``topi``'s NHWC version, written out here because that one no longer takes
transformed weights. Their stages carry MetaSchedule's CPU rules for the data and inverse
transforms; this module decides which convolutions take it and pads them to whole tiles.
``topi`` assumes the output is a multiple of the tile: its tiles would read past the padded
input of a 14x14 or 7x7 layer (a scheduled kernel then returns garbage), so the input is padded
to whole tiles and only the real output is kept.
"""

from __future__ import annotations

import importlib

TILE = 4
"""Output tile edge m of F(m x m, 3 x 3): 4 saves 4x the multiplies (2 would save 2.25x)."""
MIN_CHANNELS = 16
"""Fewest input and output channels for Winograd: the transforms cost O(C) per tile, the
multiplies saved O(C_in x C_out); with few channels (an image's 3) there is nothing to gain."""
MIN_TILES = 16
"""Fewest output tiles per image for Winograd (a 14x14 output has 16): a 7x7 output makes 4
tiles of which a third is padding, and ResNet-18's 7x7 layers ran 0.77x the direct
convolution's speed in NHWC at 64 trials each, where its larger layers ran 0.94-1.75x
(BENCHMARKS.md section 27)."""


def legalize_map() -> dict:
    """``LegalizeOps``' ``customize_legalize_map``: eligible ``relax.nn.conv2d`` to Winograd,
    every other convolution to TVM's default legalization."""
    return {"relax.nn.conv2d": _legalize_conv2d}


def eligible(call) -> bool:
    """A 3x3, stride-1, undilated, ungrouped float32 convolution with enough channels and output
    tiles, in NCHW / OIHW or NHWC / HWIO, whose weights are a constant (so their transform is
    folded at compile time)."""
    import tvm

    attrs = call.attrs
    data, weight = call.args
    layouts = (attrs.data_layout, attrs.kernel_layout, attrs.out_layout)
    if layouts not in (("NCHW", "OIHW", "NCHW"), ("NHWC", "HWIO", "NHWC")):
        return False
    if not isinstance(weight, tvm.ir.GenericConst) or str(weight.ty.dtype) != "float32":
        return False
    kh, kw, in_channels, out_channels = _hwio(weight.ty.shape, attrs.kernel_layout)
    sizes = dict(zip(str(attrs.data_layout), (int(x) for x in data.ty.shape)))
    _, (out_h, out_w), (extra_h, extra_w) = _tiles(sizes["H"], sizes["W"], [int(p) for p in attrs.padding])
    return (
        attrs.groups == 1
        and (kh, kw) == (3, 3)
        and [int(s) for s in attrs.strides] == [1, 1]
        and [int(d) for d in attrs.dilation] == [1, 1]
        and min(in_channels, out_channels) >= MIN_CHANNELS
        and (out_h + extra_h) // TILE * ((out_w + extra_w) // TILE) >= MIN_TILES
        and str(data.ty.dtype) == "float32"
    )


def _hwio(shape, kernel_layout: str) -> tuple[int, int, int, int]:
    """(kh, kw, C_in, C_out) of a weight shape in ``kernel_layout``."""
    sizes = dict(zip(kernel_layout, (int(x) for x in shape)))
    return sizes["H"], sizes["W"], sizes["I"], sizes["O"]


def _legalize_conv2d(bb, call):
    import tvm

    if not eligible(call):
        return tvm.ir.Op.get("relax.nn.conv2d").get_attr("FLegalize")(bb, call)
    data, weight = call.args
    layout = str(call.attrs.kernel_layout)
    transformed = bb.emit(
        bb.call_te(weight_transform, weight, layout, primfunc_name_hint="winograd_weight_transform")
    )
    padding = [int(p) for p in call.attrs.padding]
    conv = conv2d_winograd if layout == "OIHW" else conv2d_winograd_nhwc
    return bb.call_te(conv, data, transformed, padding, primfunc_name_hint="conv2d_winograd")


def weight_transform(weight, kernel_layout: str):
    """G w G^T for every (input, output) channel pair, laid out (alpha, alpha, C_in, C_out) as
    the pre-computed Winograd convolutions read it."""
    from tvm import te
    from tvm.topi.nn.winograd_util import winograd_transform_matrices

    kh, kw, in_channels, out_channels = _hwio(weight.shape, kernel_layout)
    alpha = TILE + kh - 1
    _, _, g = winograd_transform_matrices(TILE, kh, str(weight.dtype))
    r_kh = te.reduce_axis((0, kh), "r_kh")
    r_kw = te.reduce_axis((0, kw), "r_kw")

    def w(co, ci, y, x):
        return weight[co, ci, y, x] if kernel_layout == "OIHW" else weight[y, x, ci, co]

    return te.compute(
        (alpha, alpha, in_channels, out_channels),
        lambda eps, nu, ci, co: te.sum(w(co, ci, r_kh, r_kw) * g[eps, r_kh] * g[nu, r_kw], axis=[r_kh, r_kw]),
        name="transform_weight",
    )


def _tiles(height: int, width: int, padding: list[int]):
    """The padding per side, the output size, and the extra rows and columns that make the
    output whole tiles."""
    top, left, bottom, right = padding if len(padding) == 4 else (*padding, *padding)
    out_h, out_w = height + top + bottom - 2, width + left + right - 2
    return (top, left, bottom, right), (out_h, out_w), (-out_h % TILE, -out_w % TILE)


def conv2d_winograd(data, transformed_weight, padding: list[int]):
    """The NCHW convolution of ``data`` with already transformed weights, padded to whole tiles."""
    from tvm import te, topi

    winograd_nchw = importlib.import_module("tvm.topi.nn.conv2d")._conv2d_winograd_nchw_impl
    batch, _, height, width = (int(x) for x in data.shape)
    out_channels = int(transformed_weight.shape[3])
    (top, left, bottom, right), (out_h, out_w), (extra_h, extra_w) = _tiles(height, width, padding)
    padded = topi.nn.pad(data, (0, 0, top, left), (0, 0, bottom + extra_h, right + extra_w), name="pad_to_tiles")
    out = winograd_nchw(padded, transformed_weight, 1, 0, 1, str(data.dtype), TILE, pre_computed=True)
    if not (extra_h or extra_w):
        return out
    return te.compute((batch, out_channels, out_h, out_w), lambda n, c, h, w: out[n, c, h, w], name="crop_to_output")


def conv2d_winograd_nhwc(data, transformed_weight, padding: list[int]):
    """The NHWC convolution of ``data`` with already transformed weights.

    ``topi``'s NHWC version transforms the weights inside the kernel (its pre-computed path is
    gone), so this writes out the same stages and block names, which MetaSchedule's CPU rules
    for the data and inverse transforms match, reading the weights transformed at compile time.
    The output channels are innermost everywhere: the product over C_in reads the transformed
    weights along C_out, as the direct NHWC / HWIO convolution does."""
    from tvm import te, topi
    from tvm.topi.nn.winograd_util import winograd_transform_matrices

    batch, height, width, in_channels = (int(x) for x in data.shape)
    alpha, out_channels = int(transformed_weight.shape[0]), int(transformed_weight.shape[3])
    (top, left, bottom, right), (out_h, out_w), (extra_h, extra_w) = _tiles(height, width, padding)
    tiles_h, tiles_w = (out_h + extra_h) // TILE, (out_w + extra_w) // TILE
    tiles = batch * tiles_h * tiles_w
    a, b, _ = winograd_transform_matrices(TILE, 3, str(data.dtype))
    data_pad = topi.nn.pad(
        data, (0, top, left, 0), (0, bottom + extra_h, right + extra_w, 0), name="data_pad", attrs={"schedule_rule": "None"}
    )
    input_tile = te.compute(
        (alpha, alpha, tiles, in_channels),
        lambda eps, nu, p, ci: data_pad[
            p // (tiles_h * tiles_w), (p // tiles_w) % tiles_h * TILE + eps, p % tiles_w * TILE + nu, ci
        ],
        name="input_tile",
        attrs={"schedule_rule": "None"},
    )
    data_pack = _two_sided(input_tile, b, alpha, "data_pack", "conv2d_nhwc_winograd_data_pack")
    ci = te.reduce_axis((0, in_channels), "ci")
    bgemm = te.compute(
        (alpha, alpha, tiles, out_channels),
        lambda eps, nu, p, co: te.sum(data_pack[eps, nu, p, ci] * transformed_weight[eps, nu, ci, co], axis=[ci]),
        name="bgemm",
        attrs={"layout_free_placeholders": [transformed_weight]},
    )
    inverse = _two_sided(bgemm, a, TILE, "inverse", "conv2d_nhwc_winograd_inverse")
    return te.compute(
        (batch, out_h, out_w, out_channels),
        lambda n, h, w, co: inverse[h % TILE, w % TILE, n * tiles_h * tiles_w + h // TILE * tiles_w + w // TILE, co],
        name="conv2d_winograd",
    )


def _two_sided(tiles, matrix, size: int, name: str, rule: str):
    """``matrix^T t matrix`` for the (alpha x alpha) tile ``t`` of every (tile, channel) of
    ``tiles``: the data transform with B, the inverse transform with A."""
    from tvm import te

    alpha, _, count, channels = (int(x) for x in tiles.shape)
    r_a, r_b = te.reduce_axis((0, alpha), "r_a"), te.reduce_axis((0, alpha), "r_b")
    return te.compute(
        (size, size, count, channels),
        lambda i, j, p, c: te.sum(tiles[r_a, r_b, p, c] * matrix[r_a, i] * matrix[r_b, j], axis=[r_a, r_b]),
        name=name,
        attrs={"schedule_rule": rule},
    )
