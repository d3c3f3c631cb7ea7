"""Layout-matched target crops (sim2real.data.layout) and the labelled CamVid dataset, with known answers."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, IterableDataset

from sim2real.core.errors import ConfigError, LabelError
from sim2real.core.labels import (
    CAMVID_TO_TRAIN_ID,
    CAMVID_UNLABELLED,
    IGNORE_ID,
    TRAIN_ID,
    camvid_to_train_ids,
    train_ids_to_camvid,
)
from sim2real.data.datasets import CamVidDataset, ProceduralSourceDataset, to_sample
from sim2real.data.layout import (
    LAYOUT_CLASSES,
    LayoutConfig,
    LayoutDescriptor,
    LayoutMatchedTargets,
    appearance_descriptor,
    best_match,
    describe_sample,
    label_descriptor,
    similarities,
)
from sim2real.data.transforms import PairedTransform

CROP_SIZE = (96, 192)  # of the synthetic crops
H, W = CROP_SIZE
SKY, ROAD, BUILDING = (TRAIN_ID[name] for name in ("sky", "road", "building"))


# --- synthetic crops: a saturated, flat "simulated" look and a pale, grainy "real" one ---
def _crop(kind: str, look: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """(H, W) crop of ``kind`` (sky_on_top, road, building) as uint8 RGB + train ids, through ``to_sample``."""
    rng = np.random.default_rng(seed)
    grain = 0.0 if look == "sim" else 12.0
    sky = (70, 130, 230) if look == "sim" else (205, 212, 220)
    road = (90, 90, 95) if look == "sim" else (75, 72, 70)
    rgb = np.empty((H, W, 3), np.float32)
    sem = np.empty((H, W), np.uint8)
    rgb[:], sem[:] = road, ROAD
    if kind == "sky_on_top":
        horizon = H * 2 // 5 if look == "sim" else H // 2
        rgb[:horizon], sem[:horizon] = sky, SKY
    elif kind == "building":
        rgb[:], sem[:] = (150, 140, 130), BUILDING
        for y, x in itertools.product(range(6, H - 12, 24), range(8, W - 16, 24)):
            rgb[y:y + 14, x:x + 10] = (40, 45, 55)  # windows: vertical and horizontal edges
    rgb += rng.normal(0.0, grain, rgb.shape) if grain else 0.0
    return to_sample(np.clip(rgb, 0, 255).astype(np.uint8), sem)


class _Samples(Dataset):
    """A map-style dataset over fixed samples that counts its loads; ``epoch`` like the real datasets."""

    def __init__(self, samples: list[dict[str, torch.Tensor]]) -> None:
        self.samples, self.loads, self.epoch = samples, 0, 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        self.loads += 1
        return dict(self.samples[index])


def _unlabelled(sample: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in sample.items() if k not in ("semantic", "instance")}


# --- descriptors and similarity ---
def test_label_descriptor_counts_categories_per_cell_and_leaves_out_ignore():
    sem = torch.full((40, 80), ROAD, dtype=torch.int64)
    sem[:20] = SKY
    sem[:10, :10] = IGNORE_ID  # cell (0, 0) entirely ignore -> invalid
    sem[30:, 70:] = TRAIN_ID["car"]  # cell (3, 7) all vehicle
    sem[20:25, 60:70] = TRAIN_ID["terrain"]  # half of cell (2, 6): terrain -> nature
    d = label_descriptor(sem, (4, 8))
    cells = d.cells.view(4, 8, len(LAYOUT_CLASSES))
    sky, flat = LAYOUT_CLASSES.index("sky"), LAYOUT_CLASSES.index("flat")
    assert d.kind == "labels" and d.cells.shape == (32, 7)
    assert not d.valid[0] and d.valid[1:].all() and torch.all(cells[0, 0] == 0)
    assert torch.all(cells[0, 1:, sky] == 1) and torch.all(cells[1, :, sky] == 1)
    assert torch.all(cells[2, :6, flat] == 1) and torch.all(cells[3, :7, flat] == 1)
    assert cells[3, 7, LAYOUT_CLASSES.index("vehicle")] == 1
    assert cells[2, 6, LAYOUT_CLASSES.index("nature")] == 0.5 and cells[2, 6, flat] == 0.5
    assert torch.allclose(d.cells[d.valid].sum(dim=1), torch.ones(31))


def test_identical_descriptors_have_similarity_one():
    labelled = _crop("sky_on_top", "real")
    boxed = {**labelled, "frame_box": torch.tensor([0.1, 0.2, 0.6, 0.7])}
    for kind in ("labels", "appearance"):
        d = describe_sample(boxed, kind)
        assert similarities(d, [d], position_weight=0.25).item() == pytest.approx(1.0, abs=1e-6)
    other = describe_sample(_crop("road", "real"), "labels")
    assert similarities(describe_sample(labelled, "labels"), [other]).item() == pytest.approx(0.5)  # half road


def test_similarities_follow_the_documented_equations():
    # labels: mean over cells valid in both of sum_c min(p, q)
    p = torch.tensor([[0.5, 0.5, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0]])
    q = torch.tensor([[1.0, 0, 0, 0, 0, 0, 0], [0.25, 0.75, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0]])
    a = LayoutDescriptor("labels", p, torch.tensor([True, True, True]))
    b = LayoutDescriptor("labels", q, torch.tensor([True, True, False]))
    assert similarities(a, [b]).item() == pytest.approx((0.5 + 0.25) / 2)
    none = LayoutDescriptor("labels", q, torch.zeros(3, dtype=torch.bool))
    assert similarities(a, [none]).item() == 0.0
    # appearance: (1 - beta)(1 - mean |a - b|) + beta (1 - |y_a - y_b|)
    x = LayoutDescriptor("appearance", torch.tensor([[0.0, 1.0], [0.5, 0.5]]), torch.ones(2, dtype=torch.bool), 0.2)
    y = LayoutDescriptor("appearance", torch.tensor([[0.4, 1.0], [0.5, 0.1]]), torch.ones(2, dtype=torch.bool), 0.7)
    assert similarities(x, [y], 0.25).item() == pytest.approx(0.75 * (1 - 0.8 / 4) + 0.25 * 0.5)
    assert similarities(x, [y], 0.0).item() == pytest.approx(1 - 0.8 / 4)
    unplaced = LayoutDescriptor("appearance", y.cells, y.valid, None)
    assert similarities(x, [unplaced], 0.25).item() == pytest.approx(1 - 0.8 / 4)  # no box: no position term
    with pytest.raises(ConfigError, match="cannot compare"):
        similarities(a, [x])


def test_appearance_descriptor_shapes_and_position():
    d = appearance_descriptor(_crop("road", "sim")["rgb"], (2, 4), torch.tensor([0.0, 0.5, 0.5, 1.5]))
    assert d.kind == "appearance" and d.cells.shape == (8, 4) and d.valid.all()
    assert d.cells.min() >= 0 and d.cells.max() <= 1 and d.position == 1.0  # centre 1.0 (padded past 1)
    with pytest.raises(ConfigError, match=r"\(3, H, W\)"):
        appearance_descriptor(torch.zeros(H, W))


@pytest.mark.parametrize("kind", ["labels", "appearance"])
def test_sky_on_top_source_picks_the_sky_on_top_candidate_in_any_order(kind):
    source = describe_sample(_crop("sky_on_top", "sim"), kind)
    candidates = {name: describe_sample(_crop(name, "real", seed=i), kind)
                  for i, name in enumerate(("sky_on_top", "road", "building"))}
    for order in itertools.permutations(candidates):
        picked = best_match(source, [candidates[name] for name in order])
        assert order[picked] == "sky_on_top", (kind, order)


# --- real frames: CamVid crops whose labels are the referee; the appearance descriptor sees only RGB ---
def _camvid_window(root: Path, stem: str, y: int, x: int) -> tuple[np.ndarray, np.ndarray]:
    rgb = cv2.imread(str(root / "images" / f"{stem}.jpg"))[..., ::-1][y:y + 120, x:x + 240]
    label = cv2.imread(str(root / "labels" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)[y:y + 120, x:x + 240]
    return np.ascontiguousarray(rgb), camvid_to_train_ids(label)


def test_real_sky_on_top_crop_picks_the_real_sky_on_top_candidate(shared_data):
    root = shared_data / "camvid" / "train"
    source = _camvid_window(root, "0016E5_00450", 60, 180)
    windows = {"sky_on_top": _camvid_window(root, "0006R0_f02970", 0, 120),
               "road": _camvid_window(root, "0016E5_08640", 240, 180),
               "building": _camvid_window(root, "0016E5_05790", 0, 60)}
    # the labels say what each window is (a white facade makes "building" a hard negative)
    assert (source[1][:40] == SKY).mean() > 0.9 and (source[1][60:] == SKY).mean() < 0.02
    assert (windows["sky_on_top"][1][:40] == SKY).mean() > 0.9 and (windows["sky_on_top"][1][60:] == SKY).mean() == 0
    assert (windows["road"][1] == ROAD).mean() > 0.95 and (windows["building"][1] == BUILDING).mean() > 0.95
    for kind in ("labels", "appearance"):
        d = describe_sample(to_sample(*source), kind)
        for order in itertools.permutations(windows):
            picked = best_match(d, [describe_sample(to_sample(*windows[name]), kind) for name in order])
            assert order[picked] == "sky_on_top", (kind, order)


def _referee_gain(matcher: LayoutMatchedTargets, sources: list[dict], target_labels: list[LayoutDescriptor]
                  ) -> float:
    """Share of the oracle's label-similarity gain over a random draw that ``matcher``'s picks achieve."""
    picked, random, oracle = [], [], []
    for draw, source in enumerate(sources * 4):
        indices = list(matcher.candidate_indices(draw))
        truth = similarities(describe_sample(source, "labels"), [target_labels[i] for i in indices])
        choice = int(matcher.match(source, draw)["target_index"])
        picked.append(float(truth[indices.index(choice)]))
        random.append(float(truth[0]))
        oracle.append(float(truth.max()))
    return (np.mean(picked) - np.mean(random)) / (np.mean(oracle) - np.mean(random))


def test_appearance_matching_of_sim_crops_to_real_crops_recovers_most_of_the_label_oracle(shared_data):
    """Procedural source crops vs CamVid val crops (K = 8): the label-free pick, judged by the CamVid labels it
    never saw, gains >= 0.4 of what the label-based oracle gains over a random draw (measured 0.76); the same
    matcher on shuffled source labels (negative control) gains next to nothing (measured -0.18)."""
    transform = PairedTransform(crop=(128, 256), resize_short=256, scale_range=(0.8, 1.25), hflip=0.5)
    sources = list(ProceduralSourceDataset(16, 640, 360, seed=5, transform=transform))
    targets = CamVidDataset(shared_data / "camvid" / "val", transform=transform)
    target_labels = [describe_sample(targets[i], "labels") for i in range(len(targets))]
    config = LayoutConfig(candidates=8, descriptor="appearance")
    gain = _referee_gain(LayoutMatchedTargets(targets, config, seed=1), sources, target_labels)
    shuffled = [{**s, "semantic": sources[(i + 7) % len(sources)]["semantic"]} for i, s in enumerate(sources)]
    control = _referee_gain(LayoutMatchedTargets(targets, config, seed=1), shuffled, target_labels)
    assert gain >= 0.4, gain
    assert control < 0.25, control


# --- the dataset-side wrapper ---
def _pool() -> list[dict[str, torch.Tensor]]:
    return [_crop(kind, "real", seed=i) for i, kind in enumerate(["road", "building", "sky_on_top"] * 4)]


def test_picks_are_reproducible_for_a_seed_and_independent_of_call_order_and_cache():
    sources = [_crop("sky_on_top", "sim"), _crop("road", "sim"), _crop("building", "sim")]
    config = LayoutConfig(candidates=4)

    def picks(seed: int, draws: range, cache_size: int = 100) -> list[int]:
        matcher = LayoutMatchedTargets(_Samples(_pool()), LayoutConfig(candidates=4, cache_size=cache_size), seed)
        return [int(matcher.match(sources[d % 3], d)["target_index"]) for d in draws]

    first = picks(3, range(30))
    assert first == picks(3, range(30))
    assert first[15:] == picks(3, range(15, 30))  # a resumed run that restores the draw number
    assert first == picks(3, range(30), cache_size=0)
    assert first != picks(4, range(30))
    assert LayoutMatchedTargets(_Samples(_pool()), config, 3).candidate_indices(7, stream=1).tolist() != \
        LayoutMatchedTargets(_Samples(_pool()), config, 3).candidate_indices(7, stream=0).tolist()


def test_k1_degenerates_to_plain_uniform_random_sampling():
    targets = _Samples(_pool()[:5])
    matcher = LayoutMatchedTargets(targets, LayoutConfig(candidates=1), seed=0)
    sky, road = _crop("sky_on_top", "sim"), _crop("road", "sim")
    picks = [int(matcher.match(sky if d % 2 else road, d)["target_index"]) for d in range(1000)]
    assert picks == [int(matcher.candidate_indices(d)[0]) for d in range(1000)]
    counts = np.bincount(picks, minlength=5)
    assert counts.min() >= 160 and counts.max() <= 240, counts  # 200 each expected; sd ~ 12.6
    assert targets.loads == 1000 + 1  # one load per pick (+ the descriptor probe of targets[0])
    assert matcher.counter.picks == 0  # nothing was matched


def test_negative_control_without_matching_picks_ignore_the_source():
    on = LayoutMatchedTargets(_Samples(_pool()), LayoutConfig(candidates=6), seed=2)
    off = LayoutMatchedTargets(_Samples(_pool()), LayoutConfig(candidates=6, enabled=False), seed=2)
    sky, road = _crop("sky_on_top", "sim"), _crop("road", "sim")
    off_sky = [int(off.match(sky, d)["target_index"]) for d in range(40)]
    off_road = [int(off.match(road, d)["target_index"]) for d in range(40)]
    on_sky = [int(on.match(sky, d)["target_index"]) for d in range(40)]
    on_road = [int(on.match(road, d)["target_index"]) for d in range(40)]
    assert off_sky == off_road == [int(off.candidate_indices(d)[0]) for d in range(40)]
    assert on_sky != on_road  # the same draws, matched: the source decides
    kinds = ["road", "building", "sky_on_top"]  # _pool() order
    assert sum(kinds[i % 3] == "sky_on_top" for i in on_sky) > 30  # ~97 % of 6-draws hold one
    assert sum(kinds[i % 3] == "road" for i in on_road) > 30


def test_counter_and_sample_annotations_say_when_matching_changed_the_pick():
    matcher = LayoutMatchedTargets(_Samples(_pool()), LayoutConfig(candidates=4), seed=0)
    sky = _crop("sky_on_top", "sim")
    changed = 0
    for d in range(50):
        out = matcher.match(sky, d)
        first = int(matcher.candidate_indices(d)[0])
        assert bool(out["layout_changed"]) == (int(out["target_index"]) != first)
        assert 0.0 <= float(out["layout_similarity"]) <= 1.0
        changed += int(out["layout_changed"])
    summary = matcher.counter.summary()
    assert matcher.counter.picks == 50 and matcher.counter.changed == changed > 0
    assert summary["changed_fraction"] == changed / 50
    assert summary["similarity"] > summary["random_similarity"]


def test_match_batch_equals_per_sample_matches_and_collates():
    matcher = LayoutMatchedTargets(_Samples(_pool()), LayoutConfig(candidates=4), seed=0)
    batch = torch.utils.data.default_collate([_crop("sky_on_top", "sim"), _crop("road", "sim")])
    out = matcher.match_batch(batch, first_draw=10)
    assert out["rgb"].shape == (2, 3, H, W) and out["layout_changed"].shape == (2,)
    single = [int(matcher.match({k: v[i] for k, v in batch.items()}, 10 + i)["target_index"]) for i in range(2)]
    assert out["target_index"].tolist() == single


def test_descriptor_cache_saves_loads_and_follows_the_dataset_epoch():
    sky = _crop("sky_on_top", "sim")
    uncached = _Samples(_pool())
    plain = LayoutMatchedTargets(uncached, LayoutConfig(candidates=4, cache_size=0), seed=0)
    for d in range(100):
        plain.match(sky, d)
    assert uncached.loads == 1 + 100 * 4  # the probe of targets[0], then every candidate of every pick
    targets = _Samples(_pool())
    matcher = LayoutMatchedTargets(targets, LayoutConfig(candidates=4), seed=0)
    for d in range(100):
        matcher.match(sky, d)
    assert targets.loads <= 1 + 12 + 100  # each index described once, then one load per pick
    before = [int(matcher.match(sky, d)["target_index"]) for d in range(20)]
    assert sum(i % 3 == 2 for i in before) > 15  # the sky-on-top crops of _pool()
    targets.samples = [_crop(kind, "real", seed=i) for i, kind in enumerate(["sky_on_top", "road", "building"] * 4)]
    targets.epoch = 1  # a new epoch crops differently: descriptors are recomputed, picks follow the new crops
    after = [int(matcher.match(sky, d)["target_index"]) for d in range(20)]
    assert sum(i % 3 == 0 for i in after) > 15


def test_descriptor_kind_follows_the_targets_and_errors_name_the_problem():
    labelled, unlabelled = _Samples(_pool()), _Samples([_unlabelled(s) for s in _pool()])
    assert LayoutMatchedTargets(labelled).kind == "labels"
    assert LayoutMatchedTargets(unlabelled).kind == "appearance"
    forced = LayoutMatchedTargets(unlabelled, LayoutConfig(descriptor="labels"))
    with pytest.raises(ConfigError, match="needs samples with 'semantic'"):
        forced.match(_crop("road", "sim"), 0)

    class Stream(IterableDataset):
        def __iter__(self):
            yield from ()

    with pytest.raises(ConfigError, match="map-style"):
        LayoutMatchedTargets(Stream())
    with pytest.raises(ConfigError, match="non-empty"):
        LayoutMatchedTargets(_Samples([]))
    for bad in ({"candidates": 0}, {"grid": (0, 8)}, {"descriptor": "vgg"}, {"position_weight": 1.5},
                {"cache_size": -1}):
        with pytest.raises(ConfigError):
            LayoutConfig(**bad)


# --- CamVid-style labelled real frames ---
def test_camvid_classes_map_to_representative_train_ids_and_back():
    camvid = np.array([[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, CAMVID_UNLABELLED]], np.uint8)
    train = camvid_to_train_ids(camvid)
    assert train.dtype == np.uint8 and train[1, 5] == IGNORE_ID
    assert [train.ravel()[i] for i in range(11)] == [CAMVID_TO_TRAIN_ID[i] for i in range(11)]
    assert np.array_equal(train_ids_to_camvid(train)[camvid != CAMVID_UNLABELLED], camvid[camvid != CAMVID_UNLABELLED])
    assert camvid_to_train_ids(np.array([-1, 12, 255, 300])).tolist() == [IGNORE_ID] * 4


def _write_split(root: Path, stems: list[str], size: tuple[int, int] = (36, 48)) -> np.ndarray:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    label = (np.arange(size[0] * size[1]) % 12).reshape(size).astype(np.uint8)
    for stem in stems:
        cv2.imwrite(str(root / "images" / f"{stem}.jpg"), np.full((*size, 3), 128, np.uint8))
        cv2.imwrite(str(root / "labels" / f"{stem}.png"), label)
    return label


def test_camvid_dataset_yields_train_ids_and_frame_box(tmp_path):
    label = _write_split(tmp_path, ["a", "b"])
    plain = CamVidDataset(tmp_path)
    sample = plain[1]
    assert len(plain) == 2 and set(sample) == {"rgb", "semantic"}
    assert sample["semantic"].dtype == torch.int64
    assert np.array_equal(sample["semantic"].numpy(), camvid_to_train_ids(label))
    cropped = CamVidDataset(tmp_path, PairedTransform(crop=(16, 24), hflip=0.0), seed=3)[0]
    assert set(cropped) == {"rgb", "semantic", "frame_box"} and cropped["semantic"].shape == (16, 24)
    x0, y0, x1, y1 = (cropped["frame_box"] * torch.tensor([48, 36, 48, 36])).round().int().tolist()
    assert (x1 - x0, y1 - y0) == (24, 16)
    assert np.array_equal(cropped["semantic"].numpy(), camvid_to_train_ids(label)[y0:y1, x0:x1])


def test_camvid_dataset_names_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match="images/ and labels/"):
        CamVidDataset(tmp_path)
    _write_split(tmp_path / "s", ["a", "b"])
    (tmp_path / "s" / "labels" / "b.png").unlink()
    with pytest.raises(ConfigError, match=r"do not pair up.*'b'"):
        CamVidDataset(tmp_path / "s")
    _write_split(tmp_path / "t", ["a"])
    cv2.imwrite(str(tmp_path / "t" / "labels" / "a.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(LabelError, match=r"a\.png"):
        CamVidDataset(tmp_path / "t")[0]


def test_camvid_train_split_reads_as_labelled_targets(shared_data):
    dataset = CamVidDataset(shared_data / "camvid" / "train")
    sample = dataset[0]
    assert len(dataset) == 367 and sample["rgb"].shape == (3, 360, 480)
    assert set(sample["semantic"].unique().tolist()) <= set(CAMVID_TO_TRAIN_ID.values()) | {IGNORE_ID}
