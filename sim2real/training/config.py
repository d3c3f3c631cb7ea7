"""Typed training configuration: YAML -> nested frozen dataclasses, strict keys, ``a.b=c`` overrides.

Each component keeps its own config type (GeneratorConfig, DiscriminatorConfig, LossWeights, AuxConfig);
:class:`TrainConfig` only groups them. Unknown keys, wrong types and bad values raise ConfigError naming
the dotted path and the valid choices, so a typo in a YAML file never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from sim2real.core.errors import ConfigError
from sim2real.core.yaml_numbers import exponent_float
from sim2real.translator.aux_nets import AuxConfig
from sim2real.translator.config import GENERATOR_PRESETS, GeneratorConfig
from sim2real.translator.discriminator import DiscriminatorConfig
from sim2real.translator.objective import LossWeights

__all__ = [
    "CameraCalibrationConfig", "ColourPriorConfig", "OptimConfig", "SourceDataConfig", "TargetDataConfig",
    "TrainConfig", "build", "load_train_config", "to_plain",
]


VALIDATION_WORLD_OFFSET: Final = 1000  # the procedural validation frames' world is the training world + this


@dataclass(frozen=True)
class SourceDataConfig:
    """Where labelled source frames come from.

    kind: "procedural" (the built-in simulator, on the fly), "bag" (rosbag2 recordings with RGB + semantic +
    instance topics) or "cityscapes" (folders in Cityscapes naming). ``adapter`` names a sim-bridge adapter
    whose decoder turns the stored labels into canonical ones (e.g. "carla"); None = already canonical.
    ``frames``, ``sim_width``, ``sim_height``, ``sim_seed``: the procedural source's frame count, size and world
    (validation frames come from world ``sim_seed + 1000``); the run's ``seed`` seeds the training frames'
    augmentation. ``extra_sim_seeds``: more procedural worlds the training frames are spread over, beside
    ``sim_seed``'s (the class-wise colour statistics of one world depend on which few trucks or buses it holds;
    several worlds give the content's, not one draw's).
    """

    kind: Literal["procedural", "bag", "cityscapes"] = "procedural"
    paths: tuple[str, ...] = ()
    image_topic: str = "/sim/camera/image"
    semantic_topic: str = "/sim/camera/semantic"
    instance_topic: str = "/sim/camera/instance"
    tolerance_s: float = 0.0
    adapter: str | None = None
    val_paths: tuple[str, ...] = ()
    frames: int = 2000
    sim_width: int = 640
    sim_height: int = 360
    sim_seed: int = 0
    extra_sim_seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        worlds = (self.sim_seed, *self.extra_sim_seeds)
        if len(set(worlds)) != len(worlds) or self.sim_seed + VALIDATION_WORLD_OFFSET in worlds:
            raise ConfigError(f"source.extra_sim_seeds {list(self.extra_sim_seeds)} must differ from each other, from "
                              f"sim_seed {self.sim_seed} and from its validation world "
                              f"{self.sim_seed + VALIDATION_WORLD_OFFSET}")
        if self.kind in ("bag", "cityscapes") and not self.paths:
            raise ConfigError(f"source.paths is required for source.kind={self.kind!r}")
        if self.tolerance_s < 0:
            raise ConfigError(f"source.tolerance_s must be >= 0, got {self.tolerance_s}")


@dataclass(frozen=True)
class TargetDataConfig:
    """Where unlabelled target (real camera) frames come from: image folders or rosbag2 camera topics.

    ``styles``: one name per folder of ``paths`` to keep a mean style per target dataset (the generator's
    ``target_styles``; ``Translator(style=name)`` then renders in that dataset's style). Empty = one mean style.
    """

    kind: Literal["folder", "bag"] = "folder"
    paths: tuple[str, ...] = ("../shared/data/real",)
    topics: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.paths:
            raise ConfigError("target.paths must name at least one folder or bag")
        if self.kind == "bag" and not self.topics:
            raise ConfigError("target.topics is required for target.kind='bag'")
        if self.styles and (self.kind != "folder" or len(self.styles) != len(self.paths)):
            raise ConfigError(f"target.styles needs target.kind 'folder' and one name per path: {len(self.paths)} "
                              f"path(s), styles {list(self.styles)}")


def _check_labelled_frames(cfg: ColourPriorConfig | CameraCalibrationConfig, section: str) -> None:
    """The labelled-frame fields both sections share: one label folder per image folder, frame counts in range."""
    if len(cfg.images) != len(cfg.labels):
        raise ConfigError(f"{section}.images and {section}.labels need one label folder per image folder, got "
                          f"{len(cfg.images)} and {len(cfg.labels)}")
    for name in ("max_frames", "source_frames"):
        if not 1 <= getattr(cfg, name) <= 100_000:
            raise ConfigError(f"{section}.{name} must be in [1, 100000], got {getattr(cfg, name)}")


@dataclass(frozen=True)
class ColourPriorConfig:
    """Labelled frames the class-wise colour prior is fitted from at the start of a run (generator field
    ``use_colour_prior``; :mod:`sim2real.training.colour_prior_fit`).

    ``images`` / ``labels``: folders of real (target-domain) frames and their label maps, file stems matched
    (e.g. ``camvid/train/images`` and ``camvid/train/labels``); ``label_space``: "camvid" (SegNet's 11 CamVid
    ids, as the ``classwise`` baselines use) or "train_id" (the simulator's own ids). ``max_frames``: at most
    this many labelled frames (a fixed random subset); ``source_frames``: simulator frames of the run's source data (a
    fixed random subset) whose pooled statistics the map starts from.
    """

    images: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    label_space: Literal["camvid", "train_id"] = "camvid"
    max_frames: int = 400
    source_frames: int = 200

    def __post_init__(self) -> None:
        _check_labelled_frames(self, "colour_prior")


@dataclass(frozen=True)
class CameraCalibrationConfig:
    """Labelled target frames the target camera's blur and vignetting are measured from at the start of a run
    (:mod:`sim2real.training.camera_calibration`; needs ``generator.use_camera``).

    ``enabled``: calibrate (off: the optics start at the identity camera and are learned). ``images`` / ``labels``
    / ``label_space`` / ``max_frames`` / ``source_frames`` mean what they mean in :class:`ColourPriorConfig`
    (usually the same folders; here 200 frames of each by default: the vignetting fit needs about that many).
    The calibrated optics are then learned further like the rest of the camera unless the run freezes them
    (``freeze: [camera.blur, camera.vignette]``).
    """

    enabled: bool = False
    images: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    label_space: Literal["camvid", "train_id"] = "camvid"
    max_frames: int = 200
    source_frames: int = 200

    def __post_init__(self) -> None:
        _check_labelled_frames(self, "camera_calibration")
        if self.enabled and not self.images:
            raise ConfigError("camera_calibration.enabled needs labelled target frames: set camera_calibration.images "
                              "and camera_calibration.labels")


@dataclass(frozen=True)
class OptimConfig:
    """Adam with GAN betas for generator / discriminators / critics, a schedule and gradient clipping.

    ``lr_camera``: the learning rate of the camera model's parameters (a handful of physical scalars: blur width,
    vignetting, aberration, noise, tone curve), in the generator's optimiser. At the generator's rate Adam moves
    each by at most ~2e-4 a step, thousands of steps to reach a real camera's blur; these few numbers can move
    faster without destabilising anything.
    ``warmup_steps``: every optimiser's LR ramps linearly over these first steps ((step + 1) / N).
    ``generator_warmup_steps``: the generator optimiser's LR alone (its camera and PatchNCE projector included)
    ramps the same way over these first steps, times the schedule (and times ``warmup_steps``' ramp when both are
    set), while the discriminators and critics learn at their full rate: a generator that starts on a good answer
    (``generator.identity_start``) is not moved far by the gradients of untrained critics, nor by Adam's first
    steps (about the full LR on every weight, the zero-initialised colour head's included).
    """

    lr_generator: float = 2e-4
    lr_camera: float = 5e-3
    lr_discriminator: float = 2e-4
    lr_aux: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    schedule: Literal["constant", "linear", "cosine"] = "linear"
    warmup_steps: int = 0
    generator_warmup_steps: int = 0
    decay_start: float = 0.5
    grad_clip: float = 10.0

    def __post_init__(self) -> None:
        if self.warmup_steps < 0 or self.generator_warmup_steps < 0:
            raise ConfigError(f"optim.warmup_steps and optim.generator_warmup_steps must be >= 0, got "
                              f"{self.warmup_steps} and {self.generator_warmup_steps}")
        if not 0.0 <= self.decay_start <= 1.0:
            raise ConfigError(f"optim.decay_start is a fraction of the steps in [0, 1], got {self.decay_start}")
        if self.grad_clip < 0:
            raise ConfigError(f"optim.grad_clip must be >= 0 (0 = off), got {self.grad_clip}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; saved in every checkpoint.

    ``amp`` / ``amp_dtype``: mixed precision (``training.numerics``: auto = fp16 + loss scaling on CUDA, off
    on CPU; bf16 on either). ``deterministic``: deterministic algorithms (exact resume on CUDA, slower).
    ``max_bad_frames``: distinct undecodable frames of the bag datasets skipped (each logged with bag and
    stamp) before the run stops with an error; 0 stops at the first.
    ``objective``: "drit" (both directions, cross-cycle; :func:`~sim2real.translator.objective.translate_batches`)
    or "cut" (one-sided s->t with PatchNCE; :func:`~sim2real.translator.objective.translate_one_sided`).
    ``steps``: optimiser steps; 0 = none: the run starts from ``init_from``, fits its colour prior and exports
    (e.g. a trained model with its prior switched to per frame).
    ``accumulate``: micro-batches whose gradients are summed before each optimiser step (an effective batch of
    ``batch_size * accumulate`` on a CPU that fits only small batches).
    ``layout_candidates``: K > 1 draws K target crops per source crop and keeps the one whose layout matches best
    (:class:`~sim2real.data.layout.LayoutMatchedTargets`, EPE-style patch matching: the discriminator then
    compares like with like); 1 = plain random targets. Needs a map-style target (folders).
    ``validation_judge``: the judge validation scores the EMA generator with (judge mIoU of its translations
    against the labels of the held-out source frames); the best checkpoint is the one with the highest. A path
    relative to the package's share directory or the working directory; null = no best-checkpoint selection.
    The training critics never select a checkpoint: they are what the generator is trained against.
    """

    out_dir: str = "runs/default"
    steps: int = 1000
    batch_size: int = 2
    crop: tuple[int, int] = (128, 256)
    resize_short: int | None = 256
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    amp_dtype: Literal["auto", "fp16", "bf16"] = "auto"
    deterministic: bool = False
    num_workers: int = 0
    max_bad_frames: int = 100
    objective: Literal["drit", "cut"] = "drit"
    accumulate: int = 1
    layout_candidates: int = 1
    validation_judge: str | None = "models/judges/camvid_segmenter.safetensors"
    ema_decay: float = 0.999
    log_every: int = 10
    image_every: int = 200
    val_every: int = 200
    val_frames: int = 4
    checkpoint_every: int = 100
    keep_last: int = 3
    init_from: str | None = None
    freeze: tuple[str, ...] = ()
    generator_preset: str = "lite"
    generator: dict[str, Any] = field(default_factory=dict)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    losses: LossWeights = field(default_factory=LossWeights)
    aux: AuxConfig = field(default_factory=AuxConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    source: SourceDataConfig = field(default_factory=SourceDataConfig)
    target: TargetDataConfig = field(default_factory=TargetDataConfig)
    colour_prior: ColourPriorConfig = field(default_factory=ColourPriorConfig)
    camera_calibration: CameraCalibrationConfig = field(default_factory=CameraCalibrationConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 0:
            raise ConfigError(f"steps must be an int >= 0, got {self.steps!r}")
        if self.steps == 0 and not self.init_from:
            raise ConfigError("steps=0 (no optimiser step) needs init_from: the weights to start from")
        for name in ("batch_size", "log_every", "image_every", "val_every", "checkpoint_every", "keep_last"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.generator_preset not in GENERATOR_PRESETS:
            raise ConfigError(f"generator_preset {self.generator_preset!r} unknown; valid: "
                              f"{sorted(GENERATOR_PRESETS)}")
        if not 1 <= self.layout_candidates <= 64:
            raise ConfigError(f"layout_candidates must be in [1, 64], got {self.layout_candidates}")
        if self.layout_candidates > 1 and self.target.kind != "folder":
            raise ConfigError("layout_candidates > 1 needs target.kind 'folder' (matching needs random access)")
        if not 1 <= self.accumulate <= 64:
            raise ConfigError(f"accumulate must be in [1, 64], got {self.accumulate}")
        if self.objective not in ("drit", "cut"):
            raise ConfigError(f"objective must be 'drit' or 'cut', got {self.objective!r}")
        if self.max_bad_frames < 0:
            raise ConfigError(f"max_bad_frames must be >= 0, got {self.max_bad_frames}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        self._check_generator_needs()

    def _check_generator_needs(self) -> None:
        """What the generator's fields need from the rest of the config (also validates ``generator``)."""
        gen = self.generator_config()
        if gen.use_colour_prior and not self.colour_prior.images:
            raise ConfigError("generator.use_colour_prior needs labelled frames to fit it from: set "
                              "colour_prior.images and colour_prior.labels")
        if self.camera_calibration.enabled and not gen.use_camera:
            raise ConfigError("camera_calibration.enabled needs a generator with a camera (generator.use_camera)")

    def generator_config(self) -> GeneratorConfig:
        """The preset with ``generator`` overrides applied (validated by GeneratorConfig)."""
        base = GENERATOR_PRESETS[self.generator_preset].to_dict()
        unknown = sorted(set(self.generator) - set(base))
        if unknown:
            raise ConfigError(f"generator: unknown field(s) {unknown}; valid: {sorted(base)}")
        styles = {"target_styles": list(self.target.styles)} if self.target.styles else {}
        return GeneratorConfig.from_dict({**base, **self.generator, **styles})


# --- building dataclasses from plain data ---
def _convert_union(value: Any, hint: Any, path: str) -> Any:
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in (a for a in args if a is not type(None)):
        try:
            return _convert(value, arg, path)
        except ConfigError as exc:
            errors.append(str(exc))
    raise ConfigError(f"{path}: {value!r} matches none of {hint}: {'; '.join(errors)}")


def _convert_tuple(value: Any, hint: Any, path: str) -> tuple:
    args = typing.get_args(hint)
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{path}: expected a list, got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        args = (args[0],) * len(value)
    if len(value) != len(args):
        raise ConfigError(f"{path}: expected {len(args)} values, got {len(value)}")
    return tuple(_convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))


def _convert_scalar(value: Any, hint: Any, path: str) -> Any:
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str) and (number := exponent_float(value)) is not None:
        return number  # PyYAML (YAML 1.1) reads ``5e-5`` as a string
    wrong_type = isinstance(hint, type) and not isinstance(value, hint)
    if wrong_type or (hint in (int, float) and isinstance(value, bool)):
        raise ConfigError(f"{path}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
    return value


def _convert(value: Any, hint: Any, path: str) -> Any:
    """Check / coerce one plain value against a type hint (dataclass, Union, Literal, tuple, dict, scalar)."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, path)
    if origin is typing.Union or origin is types.UnionType:
        return _convert_union(value, hint, path)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{path}: {value!r} is not one of {list(typing.get_args(hint))}")
        return value
    if origin is tuple:
        return _convert_tuple(value, hint, path)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    return _convert_scalar(value, hint, path)


def build(cls: type, data: Any, path: str = "config") -> Any:
    """Build dataclass ``cls`` from a mapping, recursively; unknown keys raise ConfigError listing valid ones."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping for {cls.__name__}, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; valid keys of {cls.__name__}: {names}")
    kwargs = {k: _convert(v, hints[k], f"{path}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def to_plain(obj: Any) -> Any:
    """Dataclasses / tuples -> JSON/YAML-able dicts and lists."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def apply_override(data: dict[str, Any], override: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) to nested ``data`` in place."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like key.sub=value")
    key, raw = override.split("=", 1)
    value = yaml.safe_load(raw)
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {part!r} is not a section")
    node[parts[-1]] = value


def load_train_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML config (``yaml.safe_load``), apply overrides, and build a validated TrainConfig."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
    for override in overrides:
        apply_override(data, override)
    return build(TrainConfig, data)
