"""The real ``ros2 launch`` (launch 3.7.1, launch_ros 0.28.0, ros2cli 0.36.1 from ../shared/wheels/ros2-cli,
installed into the venv by scripts/setup.sh) running ``translate.launch.py`` and ``train.launch.py`` as
subprocesses, straight from the venv prefix: node names, parameters, topics, the recorded bag (stamps, labels,
pixels), ROS namespaces side by side, the node set failing as a unit, and clean SIGINT stops.

Skipped only where the wheels do not exist (a user's clone without ../shared); where they exist and are not
installed, the tests fail (:func:`ros_testing.ros2_cli`).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from ros_testing import allocate_domain_id, isolated_env, ros2_cli

sys.path.insert(0, str(Path(__file__).resolve().parent / "ros_scripts"))
from frame_driver import make_checkpoint

pytestmark = pytest.mark.ros

H, W, RATE = 64, 96, 8.0
#: what no log of a clean run or a clean SIGINT stop may contain
UNCLEAN = re.compile(r"\[(ERROR|FATAL)\]|\[WARN\]|Traceback|rosout|never retrieved|Exception ignored")
RECORDED = ("image", "semantic", "instance", "camera_info")


def params_file(path: Path, frame_id: str, stats: Path, width: int = W, height: int = H) -> Path:
    """A params file for a small, deterministic run: sim stamps, small frames, fp32, 1 s summaries."""
    path.write_text(yaml.safe_dump({
        "/**/sim_node": {"ros__parameters": {"width": width, "height": height, "rate_hz": RATE,
                                             "use_sim_stamps": True, "frame_id": frame_id}},
        "/**/translate_node": {"ros__parameters": {
            "precision": "fp32", "backend": "torch", "warmup_width": width, "warmup_height": height,
            "summary_period_s": 1.0, "preview_rate_hz": 1.5, "stats_file": str(stats),
            # 2 cores running sim, translate and record can starve a subscription for seconds; these tests are
            # not about the label watchdog (test_translate_node.py is), so it must not fire on a slow CI run
            "label_timeout_s": 10.0}},
        "/**/record_node": {"ros__parameters": {"storage": "mcap"}},
    }))
    return path


#: runs argv[1:] with SIGINT at its default disposition (exec keeps a default, as it keeps an ignore)
_WITH_DEFAULT_SIGINT = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                        "os.execvp(sys.argv[1], sys.argv[1:])")


class Launch:
    """One ``ros2 launch sim2real <file> <args>`` process with its log."""

    def __init__(self, file: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            # SIGINT restored to its default: a runner started as a background job (nohup ... &) passes SIGINT
            # down ignored, and ros2 launch never installs a handler of its own (README, "Stop with SIGINT")
            self.proc = subprocess.Popen([sys.executable, "-c", _WITH_DEFAULT_SIGINT, ros2_cli(), "launch", "sim2real",
                                          file, *args], env=env, stdout=out, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, predicate: Callable[[str], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.text()):
            assert self.proc.poll() is None, f"ros2 launch exited ({self.proc.returncode}) before {what}:\n" + \
                self.text()[-4000:]
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{self.text()[-4000:]}"
            time.sleep(0.25)

    def stop(self, timeout: float = 90.0) -> int:
        """SIGINT (as Ctrl-C), wait; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Launch:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.kill()


def ros2(env: dict[str, str], *args: str) -> str:
    """A ``ros2 <verb> <sub>`` graph command without the daemon (nothing outlives the test), discovering for a
    few seconds (the default half second can miss a busy node); its stdout."""
    discovery = ["--no-daemon", "--spin-time", "5"] if args[0] in ("node", "topic", "param") else []
    result = subprocess.run([ros2_cli(), *args[:2], *discovery, *args[2:]], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"ros2 {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def translated_out(text: str, namespace: str = "") -> int:
    """frames_out of translate_node's newest summary line in the launch log (0 before the first)."""
    name = f"{namespace.strip('/').replace('/', '.')}.translate_node" if namespace else "translate_node"
    found = re.findall(rf"\[{re.escape(name)}\]: in=\d+ out=(\d+)", text)
    return int(found[-1]) if found else 0


def read_bag(path: Path, prefix: str, image: str = "image") -> dict[str, dict[int, Any]]:
    """``{name: {stamp_ns: message}}`` of ``<prefix>/<name>`` for the recorded topics (the image from
    ``<prefix>/<image>``, e.g. ``image/compressed``)."""
    from sim2real.io.bag_reader import BagReader

    topics = {f"{prefix}/{image}": "image", **{f"{prefix}/{n}": n for n in RECORDED if n != "image"}}
    out: dict[str, dict[int, Any]] = {name: {} for name in RECORDED}
    with BagReader(path) as reader:
        assert set(reader.topics) == set(topics), reader.topics
        for m in reader.messages(list(topics)):
            out[topics[m.topic]][m.stamp_ns] = m.msg
    return out


def pixels(msg: Any) -> np.ndarray:
    """The pixels of an Image or a CompressedImage."""
    from sim2real.io.conversions import compressed_to_array, image_to_array

    return compressed_to_array(msg) if hasattr(msg, "format") else image_to_array(msg)


def check_bag_is_the_translation_of_the_sim(bag: dict[str, dict[int, Any]], model: Path, frame_id: str,
                                            size: tuple[int, int] = (H, W)) -> int:
    """Every recorded translated image: labels and camera_info with its stamp, its frame_id, and pixels equal
    to the model's translation of the very simulator frame its stamp names (sim stamps = index / rate)."""
    from sim2real.io.conversions import image_to_array
    from sim2real.translator.inference import Translator
    from sim_bridge.procedural import ProceduralSimulator, SimConfig

    translator = Translator.from_checkpoint(model, device="cpu", precision="fp32", backend="torch")
    sim = ProceduralSimulator(SimConfig(width=size[1], height=size[0], rate_hz=RATE))
    images = bag["image"]
    assert len(images) >= 3, f"only {len(images)} translated images recorded"
    for stamp, img in images.items():
        labels = {n: bag[n].get(stamp) for n in ("semantic", "instance", "camera_info")}
        assert all(v is not None for v in labels.values()), f"labels missing for stamp {stamp}"
        assert {img.header.frame_id} == {v.header.frame_id for v in labels.values()} == {frame_id}
        frame = sim.frame(sim.config.index_of(stamp))
        assert frame.stamp_ns == stamp
        np.testing.assert_array_equal(image_to_array(labels["semantic"]), frame.semantic)
        np.testing.assert_array_equal(image_to_array(labels["instance"]), frame.instance)
        expected = translator.translate(frame.rgb, frame.semantic, frame.instance)
        diff = np.abs(pixels(img).astype(int) - expected.astype(int))
        assert diff.max() <= 2, f"stamp {stamp}: not the model's translation of the simulator frame"
    return len(images)


#: the warning of a set the synchroniser could not complete (a partner lost or late under load): counted in the
#: node's stats, so a test that is not about delivery may allow it
UNMATCHED_DROP = re.compile(r"\[WARN\].*dropped a message on \S+ \(stamp [\d.]+\): unmatched:")


def assert_clean(text: str, what: str, allowed: re.Pattern[str] | None = None) -> None:
    unclean = [line for line in text.splitlines()
               if UNCLEAN.search(line) and not (allowed is not None and allowed.search(line))]
    assert not unclean, f"{what}:\n" + "\n".join(unclean)


def test_show_args_from_the_venv(tmp_path: Path) -> None:
    from sim2real.runtime.launch_description import ARGUMENTS

    out = ros2(isolated_env(tmp_path / "ros_home"), "launch", "sim2real", "translate.launch.py", "--show-args")
    declared = re.findall(r"^    '(\w+)':", out, re.M)
    assert declared == list(ARGUMENTS), out


def test_translate_launch_records_the_translation_of_the_simulator(tmp_path: Path) -> None:
    model = make_checkpoint(tmp_path / "gen.safetensors", seed=21)
    env = isolated_env(tmp_path / "ros_home", domain_id=allocate_domain_id())
    env["OMP_NUM_THREADS"] = "1"
    stats, bag = tmp_path / "stats.json", tmp_path / "bag"
    params = params_file(tmp_path / "params.yaml", "cam_root", stats)
    launch = Launch("translate.launch.py", ["source:=builtin", "record:=true", f"output:={bag}", f"model:={model}",
                                            "device:=cpu", f"params_file:={params}"], env, tmp_path / "launch.log")
    try:
        launch.wait_for(lambda t: translated_out(t) >= 6, 180, "6 translated frames")
        nodes = ros2(env, "node", "list").split()
        assert sorted(nodes) == ["/record_node", "/sim_node", "/translate_node"], nodes
        assert "Double value is: 1.5" in ros2(env, "param", "get", "--timeout", "10", "/translate_node",
                                              "preview_rate_hz")  # from params_file
        assert f"String value is: {model}" in ros2(env, "param", "get", "--timeout", "10", "/translate_node", "model")
        topics = ros2(env, "topic", "list", "-t")
        for name in (*RECORDED, "preview"):
            assert re.search(rf"^/translated/{name} \[sensor_msgs/msg/", topics, re.M), topics
        assert launch.stop() == 0, launch.text()[-4000:]
    finally:
        launch.kill()
    text = launch.text()
    # the sensor-data QoS is best effort: on a loaded machine a lost partner (e.g. one camera_info) leaves its
    # set incomplete; that is logged and counted (below), not a fault of the run
    assert_clean(text, "the launch log of a clean run", allowed=UNMATCHED_DROP)
    for node in ("sim_node", "translate_node", "record_node"):
        assert re.search(rf"\[{node}-\d\]: process has finished cleanly", text), text[-3000:]
    recorded = check_bag_is_the_translation_of_the_sim(read_bag(bag, "/translated"), model, "cam_root")
    final = json.loads(stats.read_text())
    assert final["accounted"] and final["frames_out"] >= recorded
    # a lost partner is the exception: at most a tenth of the frames (or 2) left incomplete, on any topic
    lost = [final["drops"].get("unmatched", 0)]
    lost += [n for key, n in final["other_drops"].items() if key.endswith(":unmatched")]
    assert max(lost) <= max(2, final["frames_out"] // 10), final


def test_two_namespaced_launches_run_side_by_side_without_crossing(tmp_path: Path) -> None:
    model = make_checkpoint(tmp_path / "gen.safetensors", seed=22)
    env = isolated_env(tmp_path / "ros_home", domain_id=allocate_domain_id())  # one domain for both
    env["OMP_NUM_THREADS"] = "1"
    stats = {ns: tmp_path / f"stats_{ns}.json" for ns in ("a", "b")}
    bag = tmp_path / "bag_a"
    a = Launch("translate.launch.py", [  # the translated image recorded as png (lossless) CompressedImage
        "namespace:=/a", "record:=true", f"output:={bag}", "record_compression:=png", f"model:={model}", "device:=cpu",
        f"params_file:={params_file(tmp_path / 'a.yaml', 'cam_a', stats['a'])}"], env, tmp_path / "a.log")
    b = Launch("translate.launch.py", [  # record off, other frame size and frame_id
        "namespace:=/b", f"model:={model}", "device:=cpu",
        f"params_file:={params_file(tmp_path / 'b.yaml', 'cam_b', stats['b'], width=64, height=48)}"],
        env, tmp_path / "b.log")
    try:
        a.wait_for(lambda t: translated_out(t, "/a") >= 5, 240, "5 frames translated in /a")
        b.wait_for(lambda t: translated_out(t, "/b") >= 5, 240, "5 frames translated in /b")
        nodes = sorted(ros2(env, "node", "list").split())
        assert nodes == ["/a/record_node", "/a/sim_node", "/a/translate_node", "/b/sim_node", "/b/translate_node"]
        topics = ros2(env, "topic", "list").split()
        assert {"/a/sim/camera/image", "/a/translated/image", "/b/sim/camera/image", "/b/translated/image"} <= \
            set(topics) and "/sim/camera/image" not in topics
        assert a.stop() == 0, a.text()[-3000:]
        assert b.stop() == 0, b.text()[-3000:]
    finally:
        a.kill()
        b.kill()
    for launch in (a, b):  # two node sets on one domain: a set left incomplete under load is logged and counted
        assert_clean(launch.text(), f"{launch.log.name}", allowed=UNMATCHED_DROP)
    recorded = read_bag(bag, "/a/translated", image="image/compressed")
    assert {m.format for m in recorded["image"].values()} == {"rgb8; png compressed bgr8"}
    check_bag_is_the_translation_of_the_sim(recorded, model, "cam_a")  # only /a's frames
    published_b = int(re.findall(r"\[b\.sim_node\]: stopping: (\d+) frames published", b.text())[0])
    final_b = json.loads(stats["b"].read_text())
    assert final_b["accounted"] and 0 < final_b["frames_in"] <= published_b, (final_b, published_b)
    assert final_b["cameras"] == "/b/sim/camera/image"
    assert not final_b["bad_messages"], final_b["bad_messages"]  # no 96x64 frame from /a reached /b


@pytest.mark.parametrize("case", ["translate_node", "record_node"])
def test_a_node_that_exits_ends_the_launch_with_status_1_and_one_line(tmp_path: Path, case: str) -> None:
    env = isolated_env(tmp_path / "ros_home", domain_id=allocate_domain_id())
    model = make_checkpoint(tmp_path / "gen.safetensors", seed=23)
    existing = tmp_path / "existing_bag"
    existing.mkdir()
    args = {"translate_node": [f"model:={tmp_path / 'missing.safetensors'}"],
            "record_node": [f"model:={model}", "device:=cpu", "record:=true", f"output:={existing}"]}[case]
    params = params_file(tmp_path / "params.yaml", "cam", tmp_path / "stats.json")
    with Launch("translate.launch.py", ["source:=builtin", f"params_file:={params}", *args], env,
                tmp_path / "launch.log") as launch:
        code = launch.proc.wait(timeout=180)
    text = launch.text()
    assert code == 1, text[-4000:]
    errors = [line for line in text.splitlines() if line.startswith("[ERROR] [launch]")]
    assert len(errors) == 1 and f"{case} exited with status 1" in errors[0], errors
    why = {"translate_node": "missing.safetensors' does not exist", "record_node": "existing_bag"}[case]
    assert re.search(rf"\[{case}\]: cannot start: .*{re.escape(why)}", text), text[-3000:]
    assert re.search(r"\[sim_node-\d\]: process has finished cleanly", text), "the simulator was not stopped"
    assert "Traceback" not in text


def test_train_launch_trains_and_exports(tmp_path: Path, shared_data: Path) -> None:
    env = isolated_env(tmp_path / "ros_home", domain_id=allocate_domain_id())
    env["OMP_NUM_THREADS"] = "1"
    run = tmp_path / "run"
    overrides = [
        f"out_dir={run}", "steps=2", "source.kind=procedural", f"target.paths=[{shared_data / 'real' / 'seq0000'}]",
        "batch_size=1", "crop=[32,64]", "resize_short=64", "log_every=1", "image_every=1000", "val_every=1000",
        "val_frames=1", "checkpoint_every=1000", "discriminator.base_channels=16", "discriminator.num_scales=1",
        "aux.box_channels=8", "aux.seg_channels=8", "aux.box_hidden=32", "device=cpu",
    ]
    with Launch("train.launch.py", [f"overrides:={' '.join(overrides)}", "resume:=false"], env,
                tmp_path / "launch.log") as launch:
        code = launch.proc.wait(timeout=280)
    text = launch.text()
    assert code == 0, text[-4000:]
    assert (run / "model.safetensors").is_file(), text[-3000:]
    assert re.search(r"\[trainer_node-\d\]: process has finished cleanly", text)
    assert_clean(text, "train.launch.py log")
    with Launch("train.launch.py", ["overrides:=steps=-1"], env, tmp_path / "bad.log") as bad:
        assert bad.proc.wait(timeout=120) == 1, bad.text()[-3000:]
    assert "trainer_node exited with status 1" in bad.text()
