"""Discriminators: shapes, 70x70 receptive field, projection conditioning, content discriminator."""

from __future__ import annotations

import pytest
import torch

from sim2real.core.errors import ConfigError, LabelError
from sim2real.core.labels import IGNORE_ID
from sim2real.translator.discriminator import (
    ContentDiscriminator,
    DiscriminatorConfig,
    MultiScaleDiscriminator,
    PatchDiscriminator,
    downsample_labels,
    patchgan_receptive_field,
)

SMALL = {"base_channels": 8, "max_channels": 32, "feature_channels": 8}


def test_multiscale_shapes_and_finite():
    torch.manual_seed(0)
    disc = MultiScaleDiscriminator(DiscriminatorConfig(num_scales=3, num_classes=0, **SMALL))
    out = disc(torch.randn(2, 3, 64, 96))
    assert len(out) == 3
    for o in out:
        assert o.dim() == 4 and o.shape[:2] == (2, 1)
        assert torch.isfinite(o).all()
    # each scale sees a 2x smaller image, so its patch grid is smaller
    assert out[0].shape[-1] > out[1].shape[-1] > out[2].shape[-1]


def test_receptive_field_formula_is_70():
    assert patchgan_receptive_field(3) == 70
    assert patchgan_receptive_field(2) == 34


@pytest.mark.parametrize("spectral", [False, True])
def test_receptive_field_by_gradient_probe(spectral):
    """The gradient of one interior logit w.r.t. the input is non-zero exactly on a 70x70 window."""
    torch.manual_seed(0)
    cfg = DiscriminatorConfig(num_scales=1, num_classes=0, spectral_norm=spectral, **SMALL)
    disc = PatchDiscriminator(cfg).eval()
    # LeakyReLU slopes are never zero, so every input pixel inside the field gets a non-zero gradient.
    x = torch.randn(1, 3, 160, 160, requires_grad=True)
    out = disc(x)
    h, w = out.shape[-2:]
    out[0, 0, h // 2, w // 2].backward()
    support = x.grad.abs().sum(dim=(0, 1)) > 0
    rows = support.any(dim=1).nonzero()
    cols = support.any(dim=0).nonzero()
    assert int(rows.max() - rows.min() + 1) == 70
    assert int(cols.max() - cols.min() + 1) == 70


def test_projection_depends_on_labels_and_ignore_contributes_nothing():
    torch.manual_seed(0)
    cfg = DiscriminatorConfig(num_scales=2, num_classes=19, spectral_norm=False, **SMALL)
    disc = MultiScaleDiscriminator(cfg)
    x = torch.randn(2, 3, 64, 64)
    road = torch.zeros(2, 64, 64, dtype=torch.long)
    sky = torch.full((2, 64, 64), 10, dtype=torch.long)
    ignore = torch.full((2, 64, 64), IGNORE_ID, dtype=torch.long)
    out_road, out_sky, out_ign = disc(x, road), disc(x, sky), disc(x, ignore)
    for a, b in zip(out_road, out_sky, strict=True):
        assert (a - b).abs().max() > 1e-4
    # ignore = only psi: equal to a discriminator whose embedding is zeroed
    with torch.no_grad():
        for d in disc.scales:
            d.embed.weight.zero_()
    for a, b in zip(out_ign, disc(x, road), strict=True):
        torch.testing.assert_close(a, b)


def test_projection_ignore_row_gets_no_gradient():
    cfg = DiscriminatorConfig(num_scales=1, num_classes=19, spectral_norm=False, **SMALL)
    disc = MultiScaleDiscriminator(cfg)
    labels = torch.full((1, 64, 64), IGNORE_ID, dtype=torch.long)
    labels[:, :32] = 3
    disc(torch.randn(1, 3, 64, 64), labels)[0].sum().backward()
    grad = disc.scales[0].embed.weight.grad
    assert grad[19].abs().sum() == 0
    assert grad[3].abs().sum() > 0


def test_conditional_requires_labels_and_valid_range():
    disc = MultiScaleDiscriminator(DiscriminatorConfig(num_scales=1, **SMALL))
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(LabelError):
        disc(x)
    with pytest.raises(LabelError):
        disc(x, torch.full((1, 64, 64), 19, dtype=torch.long))


def test_downsample_labels_nearest():
    sem = torch.tensor([[[0, 0, 5, 5], [0, 0, 5, 5], [7, 7, 255, 255], [7, 7, 255, 255]]])
    out = downsample_labels(sem, (2, 2))
    assert out.tolist() == [[[0, 5], [7, 255]]]


def test_config_registry_errors_list_choices():
    with pytest.raises(ConfigError, match="instance"):
        DiscriminatorConfig(norm="batch")
    with pytest.raises(ConfigError):
        DiscriminatorConfig(num_scales=0)


def test_content_discriminator_shape_and_gradient():
    torch.manual_seed(0)
    disc = ContentDiscriminator(16, hidden=16)
    content = torch.randn(3, 16, 4, 6, requires_grad=True)
    logits = disc(content)
    assert logits.shape == (3,)
    logits.sum().backward()
    assert content.grad.abs().sum() > 0
    assert disc(torch.randn(2, 16, 1, 1)).shape == (2,)
