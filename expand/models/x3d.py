"""X3D, built from an ArchSpec, identical in structure to SlowFast's X3D.

Module names follow SlowFast (``s1`` stem, ``s2``..``s5`` stages, ``head``
with ``conv_5``, ``lin_5``, ``projection``) so parameter counts, per-stage
FLOPs and state-dict keys line up with the reference. Two deliberate
differences, neither of which changes a parameter or a counted FLOP:

* the head pools adaptively to 1x1x1, so the same network accepts the train
  crop and larger test crops (SlowFast's fixed AvgPool3d equals this at the
  train crop);
* the head returns logits in eval mode too (SlowFast applies softmax at test
  time); callers that want probabilities apply softmax themselves.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from expand.rounding import se_width
from expand.spec import ArchSpec


class SqueezeExcitation(nn.Module):
    """SlowFast's SE (operators.SE): pool, 1x1x1 conv, ReLU, 1x1x1 conv, sigmoid, scale."""

    def __init__(self, channels: int, ratio: float) -> None:
        super().__init__()
        hidden = se_width(channels, ratio)
        self.avg_pool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc1 = nn.Conv3d(channels, hidden, 1, bias=True)
        self.fc1_act = nn.ReLU()
        self.fc2 = nn.Conv3d(hidden, channels, 1, bias=True)
        self.fc2_sig = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fc2_sig(self.fc2(self.fc1_act(self.fc1(self.avg_pool(x)))))
        return x * s


class X3DStem(nn.Module):
    """Conv 1x3x3 stride (1,2,2), channel-wise temporal conv Tx1x1, BN, ReLU."""

    def __init__(self, dim_out: int, kernel_t: int) -> None:
        super().__init__()
        self.conv_xy = nn.Conv3d(3, dim_out, (1, 3, 3), (1, 2, 2), (0, 1, 1), bias=False)
        self.conv = nn.Conv3d(
            dim_out, dim_out, (kernel_t, 1, 1), 1, (kernel_t // 2, 0, 0), groups=dim_out, bias=False
        )
        self.bn = nn.BatchNorm3d(dim_out, eps=1e-5, momentum=0.1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(self.conv_xy(x))))


class X3DTransform(nn.Module):
    """1x1x1 -> channel-wise 3x3x3 (strided) -> SE (every other block) -> swish -> 1x1x1."""

    def __init__(
        self, dim_in: int, dim_out: int, dim_inner: int, stride: int, use_se: bool, se_ratio: float
    ) -> None:
        super().__init__()
        self.a = nn.Conv3d(dim_in, dim_inner, 1, bias=False)
        self.a_bn = nn.BatchNorm3d(dim_inner, eps=1e-5, momentum=0.1)
        self.a_relu = nn.ReLU(inplace=True)
        self.b = nn.Conv3d(
            dim_inner,
            dim_inner,
            (3, 3, 3),
            (1, stride, stride),
            (1, 1, 1),
            groups=dim_inner,
            bias=False,
        )
        self.b_bn = nn.BatchNorm3d(dim_inner, eps=1e-5, momentum=0.1)
        if use_se and se_ratio > 0:
            self.se = SqueezeExcitation(dim_inner, se_ratio)
        self.b_relu = nn.SiLU()  # SlowFast's Swish: x * sigmoid(x)
        self.c = nn.Conv3d(dim_inner, dim_out, 1, bias=False)
        self.c_bn = nn.BatchNorm3d(dim_out, eps=1e-5, momentum=0.1)
        self.c_bn.transform_final_bn = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a_relu(self.a_bn(self.a(x)))
        x = self.b_bn(self.b(x))
        if hasattr(self, "se"):
            x = self.se(x)
        x = self.b_relu(x)
        return self.c_bn(self.c(x))


class ResBlock(nn.Module):
    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        dim_inner: int,
        stride: int,
        use_se: bool,
        se_ratio: float,
        variant: str = "slowfast",
    ) -> None:
        super().__init__()
        if dim_in != dim_out or stride != 1:
            self.branch1 = nn.Conv3d(dim_in, dim_out, 1, (1, stride, stride), bias=False)
            # SlowFast normalises every projection shortcut; pytorchvideo only those
            # that change the channel count (res2 of X3D-M strides 24 -> 24 without BN).
            if variant == "slowfast" or dim_in != dim_out:
                self.branch1_bn = nn.BatchNorm3d(dim_out, eps=1e-5, momentum=0.1)
        self.branch2 = X3DTransform(dim_in, dim_out, dim_inner, stride, use_se, se_ratio)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f_x = self.branch2(x)
        if hasattr(self, "branch1"):
            x = self.branch1(x)
            if hasattr(self, "branch1_bn"):
                x = self.branch1_bn(x)
        return self.relu(x + f_x)


class ResStage(nn.Module):
    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        dim_inner: int,
        blocks: int,
        se_ratio: float,
        variant: str = "slowfast",
    ) -> None:
        super().__init__()
        for i in range(blocks):
            block = ResBlock(
                dim_in if i == 0 else dim_out,
                dim_out,
                dim_inner,
                stride=2 if i == 0 else 1,
                use_se=(i + 1) % 2 == 1,  # SlowFast: SE on blocks 0, 2, 4, ...
                se_ratio=se_ratio,
                variant=variant,
            )
            self.add_module(f"res{i}", block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.children():
            x = block(x)
        return x


class X3DHead(nn.Module):
    """conv_5 (1x1x1) + BN + ReLU, pool, lin_5 (1x1x1, no BN) + ReLU, dropout, projection."""

    def __init__(
        self, dim_in: int, dim_inner: int, dim_out: int, num_classes: int, dropout: float
    ) -> None:
        super().__init__()
        self.conv_5 = nn.Conv3d(dim_in, dim_inner, 1, bias=False)
        self.conv_5_bn = nn.BatchNorm3d(dim_inner, eps=1e-5, momentum=0.1)
        self.conv_5_relu = nn.ReLU(inplace=True)
        self.avg_pool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.lin_5 = nn.Conv3d(dim_inner, dim_out, 1, bias=False)
        self.lin_5_relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.projection = nn.Linear(dim_out, num_classes, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_5_relu(self.conv_5_bn(self.conv_5(x)))
        x = self.lin_5_relu(self.lin_5(self.avg_pool(x)))
        x = x.flatten(1)
        return self.projection(self.dropout(x))


VARIANTS = ("slowfast", "pytorchvideo")


class X3D(nn.Module):
    def __init__(self, spec: ArchSpec, dropout: float = 0.5, variant: str = "slowfast") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"X3D variant must be one of {VARIANTS}, got {variant!r}")
        self.spec = spec
        self.s1 = X3DStem(spec.stem_width, spec.stem_kernel_t)
        dim_in = spec.stem_width
        for i, (w, inner, n) in enumerate(
            zip(spec.stage_widths, spec.stage_inner_widths, spec.stage_blocks)
        ):
            self.add_module(f"s{i + 2}", ResStage(dim_in, w, inner, n, spec.se_ratio, variant))
            dim_in = w
        self.head = X3DHead(
            dim_in, spec.head_inner_width, spec.dim_c5, spec.num_classes, dropout
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.children():
            x = module(x)
        return x


def init_weights(model: nn.Module, fc_init_std: float = 0.01, zero_init_final_bn: bool = True) -> None:
    """SlowFast's init_helper.init_weights: MSRA convs, unit BN, zero final BN, small FC."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            final = getattr(m, "transform_final_bn", False) and zero_init_final_bn
            nn.init.constant_(m.weight, 0.0 if final else 1.0)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=fc_init_std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build_x3d(
    spec: ArchSpec,
    num_classes: int | None = None,
    dropout: float = 0.5,
    variant: str = "slowfast",
) -> X3D:
    """Build an initialised X3D network for ``spec``.

    ``num_classes`` overrides the spec's class count (the same factors are often
    counted for 400 Kinetics classes and trained on a smaller dataset).
    ``variant="pytorchvideo"`` drops the BN of stride-only shortcuts, as
    pytorchvideo's ``create_x3d`` does (48 fewer parameters for X3D-M); every
    count and search in this project uses the SlowFast structure.
    """
    if num_classes is not None and num_classes != spec.num_classes:
        spec = spec.replace(num_classes=num_classes)
    model = X3D(spec, dropout=dropout, variant=variant)
    init_weights(model)
    return model


def output_sizes(spec: ArchSpec) -> list[tuple[str, int, int, int]]:
    """(stage, T, H, W) of each stage's output; H and W halve (ceil) per stride-2 layer."""
    size = spec.crop
    rows = []
    size = math.ceil(size / 2)
    rows.append(("s1", spec.frames, size, size))
    for i in range(4):
        size = math.ceil(size / 2)
        rows.append((f"s{i + 2}", spec.frames, size, size))
    rows.append(("head", 1, 1, 1))
    return rows
