"""The evaluation judge: a semantic segmenter trained on real, labelled frames (CamVid), used only to score.

It is never a loss and never sees the translator's data or outputs in training (``benchmarks/train_judge.py``
trains it on ``camvid/train``, validates on ``camvid/val``). Applied to simulator frames (source or
translated) against the simulator's labels mapped to CamVid's 11 classes it gives the FCN-score of pix2pix /
CycleGAN: how real the frames look to a real-trained network and whether their labels survived. Its
multi-layer pooled features are the embedding of the learned-feature realism distances (KID, Fréchet).

Network (:class:`JudgeNet`, all convs 3x3 + BatchNorm + ReLU unless said):

    rgb (B,3,H,W) in [-1,1]
      stem: conv s2 (w0) -> conv s2 (w1)                                  1/4
      stage 1: blocks[0] x ResBlock(w1)                                   1/4   -> features["s4"]
      stage 2: conv s2 (w2), blocks[1] x ResBlock(w2)                     1/8   -> features["s8"]
      stage 3: conv s2 (w3), blocks[2] x ResBlock(w3, dilation 1, 2, ..)  1/16
      context: x + 1x1(global average pool)                               1/16  -> features["s16"]
      decoder: FPN top-down (1x1 laterals, bilinear up, 3x3 conv, d channels) 1/16 -> 1/8 -> 1/4
      head: 1x1 conv -> K logits at 1/4, bilinear x4 to (H, W)

Every shape is derived from the input (bilinear resizes to the lateral's size), so any H, W works and the
network exports to ONNX with dynamic height and width.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sim2real.core.errors import CheckpointError, ConfigError
from sim2real.core.labels import CAMVID_CLASS_NAMES

__all__ = [
    "FEATURE_LAYERS",
    "JUDGE_FORMAT",
    "JudgeConfig",
    "JudgeNet",
    "export_judge_onnx",
    "load_judge",
    "pooled_features",
    "save_judge",
]

JUDGE_FORMAT: Final = "sim2real-judge"
#: the feature maps :meth:`JudgeNet.forward_features` returns, shallow to deep.
FEATURE_LAYERS: Final = ("s4", "s8", "s16")
_MAX_WIDTH: Final = 1024
_MAX_BLOCKS: Final = 16


@dataclass(frozen=True)
class JudgeConfig:
    """Widths and depths of :class:`JudgeNet`.

    Attributes:
        class_names: output classes, in logit order (default CamVid's 11).
        widths: channels of the stem's first conv, then of the 1/4, 1/8 and 1/16 stages.
        blocks: residual blocks in the 1/4, 1/8 and 1/16 stages.
        decoder_width: channels of the top-down decoder.
    """

    class_names: tuple[str, ...] = CAMVID_CLASS_NAMES
    widths: tuple[int, int, int, int] = (32, 64, 128, 192)
    blocks: tuple[int, int, int] = (2, 2, 4)
    decoder_width: int = 64

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))
        if len(self.class_names) < 2:
            raise ConfigError(f"JudgeConfig.class_names needs at least 2 classes, got {self.class_names}")
        if len(self.widths) != 4 or not all(1 <= w <= _MAX_WIDTH for w in self.widths):
            raise ConfigError(f"JudgeConfig.widths must be 4 values in [1, {_MAX_WIDTH}], got {self.widths}")
        if len(self.blocks) != 3 or not all(0 <= b <= _MAX_BLOCKS for b in self.blocks):
            raise ConfigError(f"JudgeConfig.blocks must be 3 values in [0, {_MAX_BLOCKS}], got {self.blocks}")
        if not 1 <= self.decoder_width <= _MAX_WIDTH:
            raise ConfigError(f"JudgeConfig.decoder_width must be in [1, {_MAX_WIDTH}], got {self.decoder_width}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JudgeConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown JudgeConfig field(s) {unknown}; valid: {sorted(known)}")
        return cls(**data)


def _conv_bn(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class _ResBlock(nn.Module):
    """x + BN(conv(ReLU(BN(conv(x))))), then ReLU: (B, C, h, w) -> (B, C, h, w)."""

    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv_bn(channels, channels, dilation=dilation)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.bn2(self.conv2(self.conv1(x))))


def _upsample_to(x: Tensor, ref: Tensor) -> Tensor:
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


class JudgeNet(nn.Module):
    """Real-trained segmenter (module docstring): rgb (B, 3, H, W) in [-1, 1] -> logits (B, K, H, W)."""

    def __init__(self, cfg: JudgeConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w0, w1, w2, w3 = cfg.widths
        b1, b2, b3 = cfg.blocks
        d = cfg.decoder_width
        self.stem = nn.Sequential(_conv_bn(3, w0, 2), _conv_bn(w0, w1, 2))
        self.stage1 = nn.Sequential(*[_ResBlock(w1) for _ in range(b1)])
        self.stage2 = nn.Sequential(_conv_bn(w1, w2, 2), *[_ResBlock(w2) for _ in range(b2)])
        self.stage3 = nn.Sequential(_conv_bn(w2, w3, 2), *[_ResBlock(w3, dilation=1 + i % 3) for i in range(b3)])
        self.context = nn.Conv2d(w3, w3, 1, bias=False)
        self.lateral = nn.ModuleList([nn.Conv2d(c, d, 1, bias=False) for c in (w1, w2, w3)])
        self.smooth = nn.ModuleList([_conv_bn(d, d), _conv_bn(d, d)])
        self.head = nn.Conv2d(d, cfg.num_classes, 1)

    def forward_features(self, rgb: Tensor) -> dict[str, Tensor]:
        """Encoder feature maps: {"s4": (B, w1, H/4, W/4), "s8": (B, w2, ..), "s16": (B, w3, ..)}."""
        s4 = self.stage1(self.stem(rgb))
        s8 = self.stage2(s4)
        s16 = self.stage3(s8)
        s16 = F.relu(s16 + self.context(s16.mean(dim=(2, 3), keepdim=True)))
        return {"s4": s4, "s8": s8, "s16": s16}

    def decode(self, feats: dict[str, Tensor], size: tuple[int, int]) -> Tensor:
        """Top-down decoder and head: features -> logits (B, K, *size)."""
        lat4, lat8, lat16 = (lat(feats[k]) for lat, k in zip(self.lateral, FEATURE_LAYERS, strict=True))
        x = self.smooth[0](lat8 + _upsample_to(lat16, lat8))
        x = self.smooth[1](lat4 + _upsample_to(x, lat4))
        return F.interpolate(self.head(x), size=size, mode="bilinear", align_corners=False)

    def forward(self, rgb: Tensor) -> Tensor:
        return self.decode(self.forward_features(rgb), rgb.shape[-2:])


def pooled_features(feats: dict[str, Tensor]) -> Tensor:
    """Per-channel spatial mean and standard deviation of every feature map, concatenated: -> (B, D).

    D = 2 * (w1 + w2 + w3); the realism embedding of the learned-feature KID / Fréchet distance.
    """
    parts = []
    for key in FEATURE_LAYERS:
        f = feats[key].float().flatten(2)
        parts += [f.mean(-1), f.std(-1, unbiased=False)]
    return torch.cat(parts, dim=1)


def save_judge(net: JudgeNet, path: Path, info: dict[str, Any]) -> Path:
    """Write ``path`` (.safetensors: weights; metadata: format, config) and ``path.with_suffix('.json')``
    (config + ``info``: training data, command, validation figures)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    meta = {"format": JUDGE_FORMAT, "config": json.dumps(net.cfg.to_dict())}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)
    card = {"format": JUDGE_FORMAT, "config": net.cfg.to_dict(), **info}
    path.with_suffix(".json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return path


def load_judge(path: str | Path, device: str | torch.device = "cpu") -> tuple[JudgeNet, dict[str, Any]]:
    """Load a judge written by :func:`save_judge` -> (JudgeNet in eval mode, its JSON description).

    Raises:
        CheckpointError: a missing file, not a judge (wrong format), or weights that do not fit the config.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"judge {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"judge {path} is not a readable safetensors file: {exc}") from exc
    if meta.get("format") != JUDGE_FORMAT:
        raise CheckpointError(f"{path} is not a sim2real judge (format {meta.get('format')!r}, "
                              f"expected {JUDGE_FORMAT!r})")
    try:
        cfg = JudgeConfig.from_dict(json.loads(meta["config"]))
    except (KeyError, json.JSONDecodeError, TypeError, ConfigError) as exc:
        raise CheckpointError(f"judge {path}: unreadable config in its metadata: {exc}") from exc
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"judge {path}: non-finite values in {bad[:3]}")
    net = JudgeNet(cfg)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"judge {path}: weights do not fit its config: {exc}") from exc
    card_path = path.with_suffix(".json")
    info = json.loads(card_path.read_text()) if card_path.is_file() else {}
    return net.eval().to(device), info


def export_judge_onnx(net: JudgeNet, path: Path, opset: int = 18) -> Path:
    """Export the judge to ONNX: input ``rgb`` (N, 3, H, W) float32 in [-1, 1] (RGB), output ``logits``
    (N, K, H, W); batch, height and width dynamic. For ``sim2real-perception-check`` and other runtimes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, 3, 64, 96)
    axes = {0: "batch", 2: "height", 3: "width"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter, chosen: dynamic H and W
        torch.onnx.export(net.eval().cpu(), (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=["rgb"], output_names=["logits"], dynamic_axes={"rgb": axes, "logits": axes})
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m sim2real.evaluation.judge --export-onnx OUT [--judge PATH]``: the judge as ONNX."""
    import argparse
    import sys

    from sim2real.runtime.paths import share_dir

    parser = argparse.ArgumentParser(prog="python -m sim2real.evaluation.judge", description=main.__doc__)
    parser.add_argument("--judge", type=Path, default=share_dir() / "models/judges/camvid_segmenter.safetensors")
    parser.add_argument("--export-onnx", type=Path, required=True, help="output .onnx path")
    args = parser.parse_args(argv)
    try:
        net, _ = load_judge(args.judge)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {export_judge_onnx(net, args.export_onnx)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
