"""The CycleGAN / CUT ResNet-9 generator, written from the paper's definition (speed baseline only).

Zhu et al. 2017 (CycleGAN), appendix 7.2: "c7s1-64, d128, d256, R256 x 9, u128, u64, c7s1-3", where
``c7s1-k`` = 7x7 Conv-InstanceNorm-ReLU with k filters and stride 1, ``dk`` = 3x3 Conv-InstanceNorm-ReLU
with k filters and stride 2, ``Rk`` = residual block of two 3x3 convolutions with k filters,
``uk`` = 3x3 fractional-strided (transposed) Conv-InstanceNorm-ReLU with k filters and stride 1/2;
reflection padding; the last layer is a 7x7 conv to 3 channels followed by tanh (no norm). Instance norm
without affine parameters and without running statistics, convolution biases on, as in the authors'
release (``use_bias = norm_layer == InstanceNorm2d``). CUT (Park et al. 2020) uses the same generator.
11.38 M parameters; 49.6 GMACs at 256x256 and 174 GMACs at 640x360 (FlopCounterMode FLOPs / 2).
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ResnetBlock", "resnet9_generator"]


def _norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    """R_k: x + [reflect-pad 1, conv3x3, IN, ReLU, reflect-pad 1, conv3x3, IN](x); (B, k, H, W) -> same."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        """(B, k, H, W) -> (B, k, H, W)."""
        return x + self.body(x)


def resnet9_generator(in_channels: int = 3, out_channels: int = 3, width: int = 64, blocks: int = 9) -> nn.Sequential:
    """c7s1-64, d128, d256, 9 x R256, u128, u64, c7s1-3 (+ tanh): (B, 3, H, W) -> (B, 3, H, W).

    H and W must be even twice over (multiples of 4) for the output to match the input size exactly;
    other sizes still run (the transposed convolutions round up).
    """
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width, 7), _norm(width), nn.ReLU(True)]
    ch = width
    for _ in range(2):  # d128, d256
        layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), _norm(ch * 2), nn.ReLU(True)]
        ch *= 2
    layers += [ResnetBlock(ch) for _ in range(blocks)]
    for _ in range(2):  # u128, u64
        layers += [nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1), _norm(ch // 2),
                   nn.ReLU(True)]
        ch //= 2
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_channels, 7), nn.Tanh()]
    return nn.Sequential(*layers)
