"""The paper's fusion U-Net in PyTorch: a yardstick for the benchmarks only.

Same network as ``keras_colorize.models.build_colorizer(get_preset("paper"))``
(issue #3, Table 1): a torchvision-layout ResNet34 encoder (written here,
torchvision is not needed), a 2 x (conv 3x3 + BN + ReLU) bridge, the global
branch (flatten -> 1024 -> 512 (g512) -> 256 (g256), each Dense + BN + ReLU),
the class head from g512 (256 -> C), the Iizuka et al. fusion (concat of the
bridge and g256 tiled, 1x1 conv 768 -> 256 + ReLU), five up blocks
(transposed conv 2x2/2, concat skip, 2 x (conv 3x3 + BN + ReLU)) and a 1x1
conv + BN + sigmoid out. 63,389,761 trainable parameters at 256 px with
137 classes (``check_parameter_count`` asserts it).

It exists so that ``benchmarks/run.py`` can compare our Keras/TF figures with
the framework the peers (DeOldify, Zhang et al., DDColor) use, on the same
machine and in the same run. It is never imported by the package.

    python benchmarks/torch_reference.py   # prints the per-block counts
"""

import torch
from torch import nn
from torch.nn import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Table 1 of issue #3 (trainable parameters, BN gamma/beta counted) at 256 px, C = 137.
EXPECTED_COUNTS = {
    "input_block": 9_536,
    "layer1": 221_952,
    "layer2": 1_116_416,
    "layer3": 6_822_400,
    "layer4": 13_114_368,
    "bridge": 4_721_664,
    "global_branch": 34_215_168,
    "class_head": 167_323,
    "up1": 2_230_272,
    "up2": 574_336,
    "up3": 143_808,
    "up4": 45_280,
    "up5": 7_200,
    "conv_out": 38,
}
EXPECTED_TOTAL = 63_389_761


def _conv_bn_relu(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=True), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def _dense_bn_relu(cin, cout):
    return nn.Sequential(nn.Linear(cin, cout), nn.BatchNorm1d(cout), nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    """torchvision's ResNet basic block (conv3x3-BN-ReLU-conv3x3-BN + identity)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return F.relu(y + identity, inplace=True)


def _resnet_layer(cin, cout, blocks, stride):
    return nn.Sequential(
        BasicBlock(cin, cout, stride), *[BasicBlock(cout, cout, 1) for _ in range(blocks - 1)]
    )


class UpBlock(nn.Module):
    """Transposed conv 2x2/2 (bias), concat skip, 2 x (conv 3x3 (bias) + BN + ReLU)."""

    def __init__(self, cin, cskip, cout):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.conv1 = _conv_bn_relu(cout + cskip, cout)
        self.conv2 = _conv_bn_relu(cout, cout)

    def forward(self, x, skip):
        x = torch.cat([self.up(x), skip], dim=1)
        return self.conv2(self.conv1(x))


class FusionUpBlock(UpBlock):
    """Up 1: the fusion (concat bridge and tiled g256, 1x1 conv + ReLU), then an up block."""

    def __init__(self, cbridge, cglobal, cskip, cout):
        super().__init__(cout, cskip, cout)
        self.fusion = nn.Conv2d(cbridge + cglobal, cout, 1)

    def forward(self, bridge, g256, skip):
        tiled = g256[:, :, None, None].expand(-1, -1, bridge.shape[2], bridge.shape[3])
        fused = F.relu(self.fusion(torch.cat([bridge, tiled], dim=1)), inplace=True)
        return super().forward(fused, skip)


class TorchColorizer(nn.Module):
    """Fusion U-Net: input L/100 (N, 1, H, W); returns (ab in [0, 1], class logits)."""

    def __init__(self, image_size=256, num_classes=137):
        super().__init__()
        if image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32, got {image_size}")
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.input_block = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        )
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _resnet_layer(64, 64, 3, 1)
        self.layer2 = _resnet_layer(64, 128, 4, 2)
        self.layer3 = _resnet_layer(128, 256, 6, 2)
        self.layer4 = _resnet_layer(256, 512, 3, 2)
        self.bridge = nn.Sequential(_conv_bn_relu(512, 512), _conv_bn_relu(512, 512))
        flat = 512 * (image_size // 32) ** 2
        self.global_branch = nn.ModuleDict(
            {"g1024": _dense_bn_relu(flat, 1024), "g512": _dense_bn_relu(1024, 512), "g256": _dense_bn_relu(512, 256)}
        )
        self.class_head = nn.Sequential(
            _dense_bn_relu(512, 256), nn.Linear(256, num_classes), nn.BatchNorm1d(num_classes)
        )
        self.up1 = FusionUpBlock(512, 256, 256, 256)
        self.up2 = UpBlock(256, 128, 128)
        self.up3 = UpBlock(128, 64, 64)
        self.up4 = UpBlock(64, 64, 32)
        self.up5 = UpBlock(32, 3, 16)
        self.conv_out = nn.Sequential(nn.Conv2d(16, 2, 1), nn.BatchNorm2d(2))

    def forward(self, lightness):
        x = (lightness.expand(-1, 3, -1, -1) - self.mean) / self.std
        f0 = self.input_block(x)
        f1 = self.layer1(self.pool(f0))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        bridge = self.bridge(f4)
        g512 = self.global_branch["g512"](self.global_branch["g1024"](torch.flatten(bridge, 1)))
        g256 = self.global_branch["g256"](g512)
        logits = self.class_head(g512)
        y = self.up1(bridge, g256, f3)
        y = self.up2(y, f2)
        y = self.up3(y, f1)
        y = self.up4(y, f0)
        y = self.up5(y, x)
        return torch.sigmoid(self.conv_out(y)), logits


def parameter_counts(model):
    """Trainable parameters per top-level block (BN gamma/beta included)."""
    counts = {}
    for name, child in model.named_children():
        counts[name] = sum(p.numel() for p in child.parameters() if p.requires_grad)
    counts = {k: v for k, v in counts.items() if v}
    counts["total"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return counts


def check_parameter_count(model):
    """Asserts Table 1's per-block counts (256 px, 137 classes); raises AssertionError."""
    counts = parameter_counts(model)
    for name, expected in EXPECTED_COUNTS.items():
        if counts.get(name) != expected:
            raise AssertionError(f"{name}: {counts.get(name)} trainable parameters, Table 1 says {expected}")
    if counts["total"] != EXPECTED_TOTAL:
        raise AssertionError(f"total: {counts['total']}, expected {EXPECTED_TOTAL}")
    return counts


def build(image_size=256, num_classes=137, channels_last=True):
    """The reference model in train mode, optionally in channels-last memory format."""
    model = TorchColorizer(image_size, num_classes)
    if image_size == 256 and num_classes == 137:
        check_parameter_count(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def make_train_step(model, class_weight=0.01, learning_rate=1e-4):
    """One Adam step on MSE(ab) + class_weight * CE(class), the paper's P3 loss."""
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)

    def step(lightness, ab, labels):
        optimizer.zero_grad(set_to_none=True)
        pred_ab, logits = model(lightness)
        loss = F.mse_loss(pred_ab, ab) + class_weight * F.cross_entropy(logits, labels, ignore_index=-1)
        loss.backward()
        optimizer.step()
        return loss

    return step


def random_batch(batch_size, image_size, num_classes=137, channels_last=True, seed=0):
    """Random L, ab target and labels shaped like a training batch."""
    gen = torch.Generator().manual_seed(seed)
    lightness = torch.rand(batch_size, 1, image_size, image_size, generator=gen)
    ab = torch.rand(batch_size, 2, image_size, image_size, generator=gen)
    if channels_last:
        lightness = lightness.contiguous(memory_format=torch.channels_last)
        ab = ab.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, num_classes, (batch_size,), generator=gen)
    return lightness, ab, labels


if __name__ == "__main__":
    counts = check_parameter_count(TorchColorizer())
    for name, value in counts.items():
        print(f"{name:14s} {value:>12,}")
