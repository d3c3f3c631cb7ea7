"""sim2real-translate-bag on real bags: counts, timestamps, headers, byte-identical copies, batching, errors."""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from sim2real.apps.translate_bag import TranslateBagConfig, detect_storage, main, translate_bag
from sim2real.core.errors import BagError, CheckpointError, ConfigError
from sim2real.io.bag_reader import BagReader, decode_image
from sim2real.io.bag_writer import BagWriter
from sim2real.translator.checkpoint import save_checkpoint
from sim2real.translator.config import get_generator_config
from sim2real.translator.generator import TranslatorGenerator
from sim2real.translator.inference import Translator
from sim_bridge.record_cli import main as sim_main

WIDTH, HEIGHT, FRAMES = 96, 64, 4
IMAGE, SEMANTIC, INSTANCE, INFO = (f"/sim/camera/{n}" for n in ("image", "semantic", "instance", "camera_info"))
CHATTER, CUSTOM = "/chatter", "/custom/status"
CUSTOM_TYPE = "test_pkg/msg/Status"
CUSTOM_DEF = "int32 level\nstring text\n"
#: the stray image (no semantic / instance) sits 10 ms after frame 1
STRAY_OFFSET_NS = 10_000_000


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init lite generator, perturbed so no layer is an identity, saved as a real checkpoint."""
    cfg = get_generator_config("lite")
    torch.manual_seed(0)
    gen = TranslatorGenerator(cfg)
    with torch.no_grad():
        for t in gen.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.randn_like(t) * 0.05)
    return save_checkpoint(tmp_path_factory.mktemp("model") / "gen.safetensors", gen, cfg)


@pytest.fixture(scope="module")
def translator(checkpoint: Path) -> Translator:
    return Translator.from_checkpoint(checkpoint, device="cpu", precision="fp32")


def _custom_typestore() -> Any:
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg(CUSTOM_DEF, CUSTOM_TYPE))
    return store


def make_bag(root: Path, storage: str) -> Path:
    """A sim bag (record_cli) plus /chatter (std_msgs/String), a custom type the Kilted store does not know,
    and one stray image without labels; written through BagWriter in bag-time order."""
    sim = root / f"sim_{storage}"
    assert sim_main(["record", "--frames", str(FRAMES), "--out", str(sim), "--width", str(WIDTH),
                     "--height", str(HEIGHT), "--storage", storage]) == 0
    store = _custom_typestore()
    status = store.types[CUSTOM_TYPE]
    rihs01 = store.hash_rihs01(CUSTOM_TYPE)
    msgdef, _ = store.generate_msgdef(CUSTOM_TYPE, ros_version=2)
    out = root / f"in_{storage}"
    rng = np.random.default_rng(1)
    with BagReader(sim) as reader, BagWriter(out, storage=storage) as writer:
        string = writer.typestore.types["std_msgs/msg/String"]
        frame_times: list[int] = []
        for conn, ts, raw in reader.raw_messages():
            writer.write_raw(conn.topic, conn.msgtype, raw, ts)
            if conn.topic == INFO:  # last message of a frame: add the extras after it
                frame_times.append(ts)
                writer.write(CHATTER, string(data=f"frame {len(frame_times)}"), ts + 1_000_000)
                raw_status = store.serialize_cdr(status(level=len(frame_times), text="ok"), CUSTOM_TYPE)
                writer.write_raw(CUSTOM, CUSTOM_TYPE, raw_status, ts + 2_000_000, msgdef=msgdef, rihs01=rihs01)
                if len(frame_times) == 2:
                    stray = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
                    writer.write_image(IMAGE, stray, "rgb8", ts + STRAY_OFFSET_NS, "sim_camera")
    shutil.rmtree(sim)
    return out


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bags")
    return {storage: make_bag(root, storage) for storage in ("mcap", "sqlite3")}


def read_all(path: Path) -> tuple[dict[str, str], dict[str, list[tuple[int, bytes]]]]:
    """(topic -> msgtype, topic -> [(bag timestamp, raw bytes)] in bag order)."""
    out: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
    with BagReader(path) as reader:
        types = {t.name: t.msgtype for t in reader.topics.values()}
        for conn, ts, raw in reader.raw_messages():
            out[conn.topic].append((int(ts), bytes(raw)))
    return types, dict(out)


def label_stamps(path: Path) -> set[int]:
    """Header stamps of the semantic topic: the stray image's stamp is not among them."""
    with BagReader(path) as reader:
        return {m.stamp_ns for m in reader.messages([SEMANTIC])}


def images(path: Path, topic: str = IMAGE) -> list[tuple[int, int, str, np.ndarray, str]]:
    """[(bag time, header stamp ns, frame_id, pixels, encoding)] of ``topic``."""
    with BagReader(path) as reader:
        return [(m.timestamp_ns, m.stamp_ns, m.msg.header.frame_id, decode_image(reader.topics[topic].msgtype,
                 m.msg).copy(), m.msg.encoding) for m in reader.messages([topic])]


@pytest.mark.parametrize("storages", [("mcap", "sqlite3"), ("sqlite3", "mcap")], ids=["mcap-to-sqlite3",
                                                                                       "sqlite3-to-mcap"])
def test_cli_translates_images_and_copies_everything_else(bags: dict[str, Path], checkpoint: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          storages: tuple[str, str]) -> None:
    src_storage, out_storage = storages
    src, dst = bags[src_storage], tmp_path / "out"
    rc = main([str(src), str(dst), "--model", str(checkpoint), "--batch", "3", "--device", "cpu",
               "--storage", out_storage, "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert detect_storage(dst) == out_storage
    assert f"translated {FRAMES} frames, unmatched: 1 copied, 0 dropped; 6 topics" in captured.out

    in_types, inp = read_all(src)
    out_types, out = read_all(dst)
    assert out_types == in_types  # same topics, same types (custom type included)
    for topic in inp:
        assert [ts for ts, _ in out[topic]] == [ts for ts, _ in inp[topic]], topic  # counts + bag times + order
        if topic != IMAGE:
            assert [raw for _, raw in out[topic]] == [raw for _, raw in inp[topic]], f"{topic} not byte-identical"

    before, after = images(src), images(dst)
    assert len(before) == len(after) == FRAMES + 1
    labelled = label_stamps(src)
    translated = 0
    for (bt0, stamp0, frame0, px0, _), (bt1, stamp1, frame1, px1, enc1) in zip(before, after, strict=True):
        assert (bt1, stamp1, frame1) == (bt0, stamp0, frame0)
        assert enc1 == "rgb8" and px1.shape == (HEIGHT, WIDTH, 3)
        if stamp0 not in labelled:
            assert np.array_equal(px1, px0), "the unmatched image must be copied unchanged"
        else:
            assert np.mean(px1 != px0) > 0.5, "a translated frame must differ from the simulator frame"
            translated += 1
    assert translated == FRAMES
    stray_raw = [raw for (_, raw), img in zip(inp[IMAGE], before, strict=True) if img[1] not in labelled]
    assert len(stray_raw) == 1 and stray_raw[0] in [raw for _, raw in out[IMAGE]]


def test_batch_sizes_and_early_flush_agree(bags: dict[str, Path], translator: Translator, tmp_path: Path) -> None:
    results = {}
    for name, cfg in {"b1": TranslateBagConfig(batch=1), "b3": TranslateBagConfig(batch=3),
                      "b3_tiny_buffer": TranslateBagConfig(batch=3, max_buffer_mb=1e-6)}.items():
        res = translate_bag(bags["mcap"], tmp_path / name, translator, cfg, progress=False)
        assert (res.translated, res.copied, res.dropped) == (FRAMES, 1, 0)
        results[name] = np.stack([px for *_, px, _ in images(tmp_path / name)]).astype(np.int16)
    # inference docstring / test_inference: batch sizes may differ by one rounding step, never more
    assert np.abs(results["b1"] - results["b3"]).max() <= 1
    assert np.abs(results["b3"] - results["b3_tiny_buffer"]).max() <= 1


class RecordingTranslator:
    """Inverts the frame and records batch sizes: checks batching without a network."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def translate(self, rgb: np.ndarray, semantic: np.ndarray, instance: np.ndarray) -> np.ndarray:
        assert rgb.shape[0] == semantic.shape[0] == instance.shape[0]
        assert semantic.dtype == np.uint8 and instance.dtype == np.uint16
        self.batches.append(rgb.shape[0])
        return 255 - rgb


def test_frames_are_batched_and_output_topic_keeps_input(bags: dict[str, Path], tmp_path: Path) -> None:
    fake = RecordingTranslator()
    cfg = TranslateBagConfig(batch=3, output_topic="/translated/image", unmatched="drop")
    res = translate_bag(bags["mcap"], tmp_path / "out", fake, cfg, progress=False)
    assert fake.batches == [3, FRAMES - 3]
    assert (res.translated, res.copied, res.dropped) == (FRAMES, 0, 1)
    _, inp = read_all(bags["mcap"])
    _, out = read_all(tmp_path / "out")
    assert out[IMAGE] == inp[IMAGE], "with --output-topic the input images stay, unchanged"
    translated = images(tmp_path / "out", "/translated/image")
    labelled = label_stamps(bags["mcap"])
    matched = [img for img in images(bags["mcap"]) if img[1] in labelled]
    assert len(translated) == FRAMES == res.messages["/translated/image"]
    for (bt, stamp, frame, px, _), (bt0, stamp0, frame0, px0, _) in zip(translated, matched, strict=True):
        assert (bt, stamp, frame) == (bt0, stamp0, frame0)
        assert np.array_equal(px, 255 - px0)


def test_unmatched_drop_and_error(bags: dict[str, Path], tmp_path: Path) -> None:
    fake = RecordingTranslator()
    res = translate_bag(bags["sqlite3"], tmp_path / "drop", fake, TranslateBagConfig(batch=1, unmatched="drop"),
                        progress=False)
    assert (res.translated, res.copied, res.dropped) == (FRAMES, 0, 1)
    # bounded buffering: the stray image is settled as soon as the next frame matches, not at the end of the
    # bag; at most the stray + frame 2's image, semantic and instance wait at once
    assert res.peak_buffered <= 4
    _, out = read_all(tmp_path / "drop")
    assert len(out[IMAGE]) == FRAMES and len(out[SEMANTIC]) == FRAMES

    with pytest.raises(BagError, match=r"image on /sim/camera/image with stamp \d+ ns .* has no /sim/camera/semantic"):
        translate_bag(bags["sqlite3"], tmp_path / "err", fake, TranslateBagConfig(unmatched="error"),
                      progress=False)
    assert not (tmp_path / "err").exists(), "a failed run must not leave a partial bag"

    # 20 ms reaches frame 1's labels (already taken by frame 1's image) but not frame 2's (23 ms away)
    res = translate_bag(bags["sqlite3"], tmp_path / "tol", fake, TranslateBagConfig(tolerance_s=0.02),
                        progress=False)
    assert res.frames == FRAMES + 1 and res.copied == 1


def test_errors_name_what_was_wrong(bags: dict[str, Path], checkpoint: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    src = str(bags["mcap"])
    model = ["--model", str(checkpoint), "--device", "cpu", "--no-progress"]

    assert main([src, str(tmp_path / "a"), *model, "--semantic-topic", "/nope"]) == 2
    err = capsys.readouterr().err
    assert "'/nope' not in bag" in err and "/chatter [std_msgs/msg/String]" in err
    assert not (tmp_path / "a").exists()

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    assert main([src, str(existing), *model]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]

    bad_model = tmp_path / "bad.safetensors"
    bad_model.write_bytes(b"\x00" * 64)
    assert main([src, str(tmp_path / "b"), "--model", str(bad_model), "--device", "cpu"]) == 2
    assert f"CheckpointError: {bad_model}" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match=str(tmp_path / "missing.safetensors")):
        Translator.from_checkpoint(tmp_path / "missing.safetensors", device="cpu")

    corrupt = tmp_path / "corrupt"
    shutil.copytree(src, corrupt)
    for f in corrupt.glob("*.mcap"):
        f.write_bytes(f.read_bytes()[: 200])
    assert main([str(corrupt), str(tmp_path / "c"), *model]) == 2
    assert str(corrupt) in capsys.readouterr().err
    assert not (tmp_path / "c").exists()

    assert main([src, str(tmp_path / "d"), *model, "--batch", "0"]) == 2
    assert "batch must be >= 1" in capsys.readouterr().err
    assert main([src, str(tmp_path / "e"), *model, "--output-topic", CHATTER]) == 2
    assert "output topic '/chatter' exists" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="must differ"):
        TranslateBagConfig(semantic_topic=IMAGE).validate()


def _with_qos(src: Path, dst: Path) -> Any:
    """A copy of ``src`` whose every connection offers one reliable, transient-local profile; that profile."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    never = QosTime(sec=9223372036, nsec=854775807)
    qos = Qos(QosHistory.UNKNOWN, 0, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, never, never,
              QosLiveliness.AUTOMATIC, never, False)
    with BagReader(src) as reader, BagWriter(dst, storage="mcap") as writer:
        for conn, ts, raw in reader.raw_messages():
            msgdef = conn.msgdef.data if conn.msgtype == CUSTOM_TYPE else None
            writer.write_raw(conn.topic, conn.msgtype, raw, ts, msgdef=msgdef,
                             rihs01=conn.digest if msgdef else None, offered_qos=(qos,))
    return qos


@pytest.mark.parametrize("codec", ["png", "jpeg"])
def test_compress_writes_compressed_translations_and_keeps_offered_qos(bags: dict[str, Path], translator: Translator,
                                                                      tmp_path: Path, codec: str) -> None:
    from rosbags.rosbag2 import Reader

    from sim2real.io.conversions import array_to_compressed, compressed_to_array

    src = tmp_path / "in_qos"
    qos = _with_qos(bags["mcap"], src)
    raw = translate_bag(src, tmp_path / "raw", translator, TranslateBagConfig(), progress=False)
    result = translate_bag(src, tmp_path / "out", translator, TranslateBagConfig(compress=codec), progress=False)
    assert (result.translated, result.copied) == (raw.translated, raw.copied) == (FRAMES, 1)
    with Reader(tmp_path / "out") as reader:
        conns = {c.topic: c for c in reader.connections}
        assert IMAGE not in conns and conns[f"{IMAGE}/compressed"].msgtype == "sensor_msgs/msg/CompressedImage"
        assert all(list(c.ext.offered_qos_profiles) == [qos] for c in conns.values()), "QoS not carried over"
    expected = {stamp: (pixels, frame_id) for _, stamp, frame_id, pixels, _ in images(tmp_path / "raw")}
    with BagReader(tmp_path / "out") as reader:
        out = [(m.stamp_ns, m.msg) for m in reader.messages([f"{IMAGE}/compressed"])]
    assert sorted(stamp for stamp, _ in out) == sorted(expected)  # the translations and the copied stray image
    for stamp, msg in out:
        pixels, frame_id = expected[stamp]
        assert msg.format == f"rgb8; {codec} compressed bgr8" and msg.header.frame_id == frame_id
        decoded = compressed_to_array(msg)
        if codec == "png":  # lossless: the very pixels of the raw run
            np.testing.assert_array_equal(decoded, pixels)
        else:  # jpeg q95 (lossy): exactly what the encoder makes of the raw run's pixels
            np.testing.assert_array_equal(decoded, compressed_to_array(array_to_compressed(pixels, "rgb8", "jpeg", 95)))
