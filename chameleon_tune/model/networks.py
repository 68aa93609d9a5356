"""The paper's networks (and one transformer layer) as plain PyTorch modules with random weights.

torchvision is not installable here, so the architectures are written out
with the same layer shapes and the same layer order as torchvision's, which
is what matters for extracting tuning tasks. Nothing is downloaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

INPUT_SHAPE = (1, 3, 224, 224)
NUM_CLASSES = 1000


class AlexNet(nn.Module):
    """torchvision's AlexNet variant (64/192/384/256/256 channels, no LRN)."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=0.5),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=0.5),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


# VGG-16 is configuration "D": integers are 3x3 conv widths, "M" a 2x2 max-pool.
_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
    512, 512, 512, "M", 512, 512, 512, "M",
)


class VGG16(nn.Module):
    """VGG-16 without batch norm, as torchvision's ``vgg16``."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for item in _VGG16_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(item, int)
                layers += [nn.Conv2d(in_channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                in_channels = item
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=0.5),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=0.5),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _projection(in_planes: int, out_planes: int, stride: int) -> nn.Module | None:
    """The 1x1 convolution + batch norm that brings a block's identity to its output shape (None: none needed)."""
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out_planes))


class BasicBlock(nn.Module):
    """ResNet basic block; the 1x1 downsample runs after conv2, as in torchvision."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _projection(in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet bottleneck block (1x1 reduce, 3x3, 1x1 expand by 4); the stride sits on the 3x3
    convolution and the 1x1 downsample projects the identity, as in torchvision (v1.5)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet with torchvision's layer shapes: a 7x7 stem, four stages of ``block`` at widths
    64/128/256/512 (times the block's expansion), global average pooling, a linear classifier."""

    def __init__(self, block: type[nn.Module], blocks: tuple[int, int, int, int], num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        expansion = getattr(block, "expansion", 1)
        stages, in_planes = [], 64
        for planes, count, stride in zip((64, 128, 256, 512), blocks, (1, 2, 2, 2)):
            layers = [block(in_planes, planes, stride)]
            in_planes = planes * expansion
            layers += [block(in_planes, planes) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def ResNet18(num_classes: int = NUM_CLASSES) -> ResNet:
    """ResNet-18: two basic blocks per stage."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes)


def ResNet50(num_classes: int = NUM_CLASSES) -> ResNet:
    """ResNet-50: 3, 4, 6 and 3 bottleneck blocks per stage (25.6 M parameters, as torchvision's)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes)


class ConvBNReLU6(nn.Sequential):
    """Conv (no bias) + BatchNorm + ReLU6 with "same" padding, as torchvision's Conv2dNormActivation."""

    def __init__(
        self, in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1, groups: int = 1
    ) -> None:
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_planes, out_planes, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_planes),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (skipped when t=1), 3x3 depthwise, linear 1x1 project."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(in_planes * expand_ratio))
        self.use_res_connect = stride == 1 and in_planes == out_planes
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(in_planes, hidden, kernel_size=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_planes, 1, 1, 0, bias=False),
            nn.BatchNorm2d(out_planes),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_res_connect else out


# (expansion t, output channels c, repeats n, first stride s) per stage, width multiplier 1.0.
_MOBILENET_V2_CFG = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class MobileNetV2(nn.Module):
    """MobileNetV2 at width 1.0 (32 stem channels, 1280 last channels)."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        in_planes, last_planes = 32, 1280
        layers: list[nn.Module] = [ConvBNReLU6(3, in_planes, stride=2)]
        for t, c, n, s in _MOBILENET_V2_CFG:
            for i in range(n):
                layers.append(InvertedResidual(in_planes, c, s if i == 0 else 1, t))
                in_planes = c
        layers.append(ConvBNReLU6(in_planes, last_planes, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(last_planes, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class BertLayer(nn.Module):
    """One BERT-base encoder layer (post-norm, as in BERT): hidden 768, 12 heads, FFN 3072, GELU.

    Attention is written out (batched matmuls, softmax) rather than taken from
    ``nn.MultiheadAttention``, whose fused kernel a compiler cannot see into.
    """

    def __init__(self, hidden: int = 768, heads: int = 12, ffn: int = 3072) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.attention_out = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.intermediate = nn.Linear(hidden, ffn)
        self.output = nn.Linear(ffn, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, hidden = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, seq, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        context = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(batch, seq, hidden)
        x = self.attention_norm(x + self.attention_out(context))
        return self.output_norm(x + self.output(nn.functional.gelu(self.intermediate(x))))


_BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "alexnet": AlexNet,
    "vgg16": VGG16,
    "resnet18": ResNet18,
    "mobilenet_v2": MobileNetV2,
    "resnet50": ResNet50,
    "bert_base_layer": BertLayer,
}
MODELS: tuple[str, ...] = tuple(_BUILDERS)
_INPUT_SHAPES = {"bert_base_layer": (1, 128, 768)}  # batch 1, sequence 128, hidden 768


def input_shape(name: str) -> tuple[int, ...]:
    """The input a built-in model is exported and tuned for: an image, or hidden states."""
    return _INPUT_SHAPES.get(name, INPUT_SHAPE)


def build_model(name: str) -> nn.Module:
    """A freshly initialised (random-weight) model in eval mode, its batch norms calibrated.

    Builds on torch's current default device, so ``with torch.device("meta")``
    gives a shape-only model without paying for weight initialisation.
    """
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; choices: {', '.join(MODELS)}") from None
    model = builder()
    if not any(p.is_meta for p in model.parameters()):
        _calibrate_batch_norms(model, input_shape(name))
    return model.eval()


def _calibrate_batch_norms(model: nn.Module, shape: tuple[int, ...], batch: int = 4) -> None:
    """Set every batch norm's running statistics to those of its input on random data.

    With freshly initialised statistics (mean 0, variance 1) activations shrink layer after
    layer: the random-weight MobileNetV2's output did not depend on its input (two inputs gave
    outputs 4e-9 apart), so checking a compiled model against it checked nothing. Calibrated,
    each batch norm normalizes what it actually sees, as in a trained network."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        model(torch.randn(batch, *shape[1:]))
