"""The procedural simulator: pixel-exact labels, stable instance ids, determinism, configuration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sim2real.core.errors import ConfigError
from sim2real.core.labels import CLASS_NAMES, THING_CLASSES, TRAIN_ID
from sim_bridge.procedural import ProceduralSimulator, SimConfig, SimFrame

SMALL = SimConfig(width=320, height=180, seed=7, traffic_density=0.8, pedestrian_density=0.8)
STUFF = [TRAIN_ID[n] for n in ("road", "sidewalk", "building", "wall", "fence", "vegetation", "terrain", "sky")]
#: which classes an object kind may be drawn as (the scene's kind -> the class under its mask)
MOVING = ("car", "truck", "bus", "person", "rider", "bicycle", "motorcycle")


@pytest.fixture(scope="module")
def sim() -> ProceduralSimulator:
    return ProceduralSimulator(SMALL)


@pytest.fixture(scope="module")
def frames(sim: ProceduralSimulator) -> list[SimFrame]:
    return [sim.frame(i) for i in (0, 1, 2, 90, 91, 300, 301)]


def test_frame_layout(frames: list[SimFrame]) -> None:
    f = frames[0]
    assert f.rgb.shape == (180, 320, 3) and f.rgb.dtype == np.uint8
    assert f.semantic.shape == (180, 320) and f.semantic.dtype == np.uint8
    assert f.instance.shape == (180, 320) and f.instance.dtype == np.uint16
    assert f.rgb.flags.c_contiguous and f.semantic.flags.c_contiguous and f.instance.flags.c_contiguous
    fx, fy, cx, cy = SMALL.intrinsics()
    np.testing.assert_allclose(f.K, [[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    assert fx == pytest.approx(160.0)  # 90 deg horizontal fov over 320 px
    assert set(np.unique(f.semantic)) <= set(range(len(CLASS_NAMES)))


def test_each_instance_has_exactly_its_own_class(frames: list[SimFrame]) -> None:
    for f in frames:
        ids = np.unique(f.instance)
        assert len(ids) > 10, "a city street should show a good number of objects"
        for i in ids[ids > 0]:
            classes = np.unique(f.semantic[f.instance == i])
            assert len(classes) == 1, f"frame {f.index}: instance {i} covers classes {classes}"
            kind = f.objects[int(i)]
            assert classes[0] == TRAIN_ID[kind], f"instance {i} is a {kind} but drawn as {classes[0]}"


def test_thing_pixels_have_instances_and_stuff_has_none(frames: list[SimFrame]) -> None:
    for f in frames:
        things = np.isin(f.semantic, [TRAIN_ID[n] for n in MOVING])
        assert things.any()
        assert (f.instance[things] > 0).all()
        assert (f.instance[np.isin(f.semantic, STUFF)] == 0).all()
        assert (f.instance[f.semantic == TRAIN_ID["sky"]] == 0).all()
        # poles, signs and traffic lights carry ids too
        small = np.isin(f.semantic, [TRAIN_ID[n] for n in ("pole", "traffic sign", "traffic light")])
        assert (f.instance[small] > 0).all()


@pytest.mark.parametrize(
    "config",
    [SimConfig(width=160, height=90, seed=s, time_of_day=h, ego_speed=v, fov_deg=fov, traffic_density=td)
     for s, h, v, fov, td in ((0, 6.5, 0.0, 60.0, 1.0), (1, 19.0, 25.0, 120.0, 0.3), (2, 3.0, 12.0, 90.0, 0.0),
                              (3, 12.0, 8.0, 75.0, 0.7))],
    ids=lambda c: f"seed{c.seed}",
)
def test_label_invariants_hold_across_configs(config: SimConfig) -> None:
    sim = ProceduralSimulator(config)
    for index in (0, 37, 401, 2000):
        f = sim.frame(index)
        ids, inverse = np.unique(f.instance, return_inverse=True)
        pairs = np.unique(np.stack([inverse.ravel(), f.semantic.ravel()]), axis=1)
        things = pairs[0][ids[pairs[0]] > 0]
        assert len(things) == len(np.unique(things)), f"an instance covers two classes in frame {index}"
        for k, cls in zip(pairs[0], pairs[1], strict=True):
            if ids[k]:
                assert cls == TRAIN_ID[f.objects[int(ids[k])]]
            else:
                assert cls not in THING_CLASSES


def test_scene_kinds_are_the_right_classes(sim: ProceduralSimulator) -> None:
    kinds = set(sim.scene(120).objects.values())
    assert kinds <= {"car", "truck", "bus", "person", "rider", "bicycle", "motorcycle", "pole",
                     "traffic sign", "traffic light"}
    assert all(TRAIN_ID[k] in THING_CLASSES or k in ("pole", "traffic sign", "traffic light") for k in kinds)


def _boxes(instance: np.ndarray) -> dict[int, tuple[int, int, int, int, int]]:
    out = {}
    for i in np.unique(instance):
        if i == 0:
            continue
        ys, xs = np.nonzero(instance == i)
        out[int(i)] = (xs.min(), ys.min(), xs.max(), ys.max(), len(xs))
    return out


def test_instance_ids_stable_across_consecutive_frames(frames: list[SimFrame]) -> None:
    for a, b in ((frames[0], frames[1]), (frames[1], frames[2]), (frames[3], frames[4]), (frames[5], frames[6])):
        ba, bb = _boxes(a.instance), _boxes(b.instance)
        big = [i for i, box in ba.items() if box[4] >= 40]
        assert big
        kept = [i for i in big if i in bb]
        assert len(kept) >= 0.9 * len(big), f"frames {a.index}->{b.index}: lost ids {set(big) - set(kept)}"
        for i in kept:
            x0, y0, x1, y1, _ = ba[i]
            u0, v0, u1, v1, _ = bb[i]
            assert x0 <= u1 and u0 <= x1 and y0 <= v1 and v0 <= y1, f"instance {i} jumped"
            assert a.objects[i] == b.objects[i]


def test_same_seed_identical_frames_random_access() -> None:
    a = ProceduralSimulator(SMALL)
    b = ProceduralSimulator(SMALL)
    fb = [b.frame(i) for i in (40, 3, 17)]  # another order: frame(i) depends only on (config, i)
    for f in fb:
        g = a.frame(f.index)
        assert g.stamp_ns == f.stamp_ns
        assert np.array_equal(g.rgb, f.rgb)
        assert np.array_equal(g.semantic, f.semantic)
        assert np.array_equal(g.instance, f.instance)


def test_different_seed_differs(frames: list[SimFrame]) -> None:
    other = ProceduralSimulator(SimConfig(width=320, height=180, seed=8)).frame(0)
    assert not np.array_equal(other.rgb, frames[0].rgb)
    assert not np.array_equal(other.semantic, frames[0].semantic)


def test_traffic_moves(frames: list[SimFrame]) -> None:
    assert not np.array_equal(frames[0].rgb, frames[1].rgb)


def test_odd_size() -> None:
    f = ProceduralSimulator(SimConfig(width=321, height=179, seed=2)).frame(5)
    assert f.rgb.shape == (179, 321, 3) and f.semantic.shape == (179, 321) and f.instance.shape == (179, 321)
    assert f.K[0, 2] == pytest.approx(160.5) and f.K[1, 2] == pytest.approx(89.5)
    things = np.isin(f.semantic, sorted(THING_CLASSES))
    assert (f.instance[things] > 0).all()


@pytest.mark.parametrize("hour", [7.0, 18.2, 23.0])
def test_time_of_day_changes_rgb_not_labels(frames: list[SimFrame], hour: float) -> None:
    noon = frames[3]
    cfg = SimConfig(**{**SMALL.__dict__, "time_of_day": hour})
    other = ProceduralSimulator(cfg).frame(noon.index)
    assert np.array_equal(other.semantic, noon.semantic)
    assert np.array_equal(other.instance, noon.instance)
    assert np.abs(other.rgb.astype(int) - noon.rgb.astype(int)).mean() > 5.0


def test_night_is_darker() -> None:
    cfg = dict(width=160, height=90, seed=1)
    day = ProceduralSimulator(SimConfig(**cfg, time_of_day=12.0)).frame(0)
    night = ProceduralSimulator(SimConfig(**cfg, time_of_day=1.0)).frame(0)
    assert night.rgb.mean() < 0.65 * day.rgb.mean()  # (the ego headlights light the road ahead)
    sky = day.semantic == TRAIN_ID["sky"]
    assert night.rgb[sky].mean() < 0.2 * day.rgb[sky].mean()


def test_all_classes_appear_over_a_short_drive(sim: ProceduralSimulator) -> None:
    wanted = {TRAIN_ID[n] for n in (
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
        "terrain", "sky", "person", "rider", "car", "truck", "bus", "motorcycle", "bicycle")}
    seen: set[int] = set()
    for i in range(0, 1200, 20):  # 40 s, 400 m
        seen |= set(np.unique(sim.frame(i).semantic).tolist())
        if wanted <= seen:
            break
    assert wanted <= seen, f"never seen: {[CLASS_NAMES[c] for c in wanted - seen]}"


def test_iteration_and_stamps() -> None:
    cfg = SimConfig(width=64, height=36, rate_hz=30.0)
    frames = list(itertools.islice(ProceduralSimulator(cfg), 3))
    assert [f.index for f in frames] == [0, 1, 2]
    assert [f.stamp_ns for f in frames] == [0, 33_333_333, 66_666_666]
    assert all(cfg.index_of(cfg.stamp_ns(i)) == i for i in (0, 1, 29, 30, 12345, 10**7))


@pytest.mark.parametrize(
    ("field", "value"),
    [("width", 0), ("height", 10**5), ("width", 320.0), ("rate_hz", 0.0), ("traffic_density", 1.5),
     ("pedestrian_density", -0.1), ("time_of_day", 24.0), ("fov_deg", 5.0), ("seed", -1),
     ("ego_speed", float("nan"))],
)
def test_config_validation_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        SimConfig(**{field: value})


def test_negative_index_rejected(sim: ProceduralSimulator) -> None:
    with pytest.raises(ValueError, match="index"):
        sim.frame(-1)
