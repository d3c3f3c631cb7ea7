"""The translate node set: its pure description, the ``sim2real-launch`` runner, and the launch file."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ros_testing import allocate_domain_id, isolated_env, python_cmd, running

sys.path.insert(0, str(Path(__file__).resolve().parent / "ros_scripts"))
from frame_driver import make_checkpoint

from sim2real.core.errors import ConfigError
from sim2real.runtime.launch_description import (
    ARGUMENTS,
    LaunchConfig,
    NodeSpec,
    default_params_file,
    describe,
    format_param_value,
    ros_args,
)
from sim2real.runtime.launcher import node_command, parse_args

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "translate.launch.py"


def by_name(specs: list[NodeSpec]) -> dict[str, NodeSpec]:
    return {s.name: s for s in specs}


def test_builtin_source_starts_sim_and_translate_with_generic_names_remapped() -> None:
    specs = describe(LaunchConfig())
    assert [s.name for s in specs] == ["sim_node", "translate_node"]
    sim, tr = specs
    assert sim.module == "sim2real.nodes.sim_node" and sim.parameters == {"output_prefix": "sim/camera"}
    assert sim.namespace == tr.namespace == ""  # no ROS namespace: relative names resolve to /sim/camera/...
    remaps = dict(tr.remappings)
    assert {k: remaps[k] for k in ("image", "semantic", "instance", "camera_info")} == {
        "image": "sim/camera/image", "semantic": "sim/camera/semantic",
        "instance": "sim/camera/instance", "camera_info": "sim/camera/camera_info",
    }
    assert remaps["translated/image"] == "translated/image"
    assert remaps["translated/preview"] == "translated/preview"
    assert tr.params_files == (default_params_file(),) and Path(default_params_file()).is_file()
    assert tr.parameters == {}  # model / device come from the params file unless given


@pytest.mark.parametrize("source", ["carla", "isaac", "morai", "airsim"])
def test_simulator_sources_use_the_adapter(source: str) -> None:
    specs = by_name(describe(LaunchConfig(source=source, input_namespace="/cam0", model="/m/x.safetensors",
                                          device="cuda:1")))
    assert set(specs) == {"sim_adapter_node", "translate_node"}
    assert specs["sim_adapter_node"].parameters == {"simulator": source, "output_prefix": "/cam0"}
    assert dict(specs["translate_node"].remappings)["image"] == "/cam0/image"
    assert specs["translate_node"].parameters == {"model": "/m/x.safetensors", "device": "cuda:1"}


def test_source_none_and_record() -> None:
    specs = by_name(describe(LaunchConfig(source="none", record=True, output="bags/a", storage="sqlite3",
                                          output_namespace="/real")))
    assert set(specs) == {"translate_node", "record_node"}
    rec = specs["record_node"]
    assert rec.parameters == {"output": "bags/a", "storage": "sqlite3", "topics": [
        "/real/image:sensor_msgs/msg/Image", "/real/semantic:sensor_msgs/msg/Image",
        "/real/instance:sensor_msgs/msg/Image", "/real/camera_info:sensor_msgs/msg/CameraInfo"]}
    assert dict(specs["translate_node"].remappings)["translated/semantic"] == "/real/semantic"


def test_invalid_configurations_are_refused_with_the_valid_choices() -> None:
    with pytest.raises(ConfigError, match="builtin, carla"):
        LaunchConfig(source="gazebo")
    with pytest.raises(ConfigError, match="ROS namespace like /robot1"):
        LaunchConfig.from_strings({"namespace": "car 1"})
    with pytest.raises(ConfigError, match="input_namespace must be a topic prefix"):
        LaunchConfig.from_strings({"input_namespace": "sim//camera"})
    with pytest.raises(ConfigError, match="must differ"):
        LaunchConfig.from_strings({"input_namespace": "/x", "output_namespace": "x"})
    with pytest.raises(ConfigError, match="safetensors"):
        LaunchConfig(model="gen.pt")
    with pytest.raises(ConfigError, match="unknown argument"):
        LaunchConfig.from_strings({"sauce": "builtin"})
    with pytest.raises(ConfigError, match="record must be one of"):
        LaunchConfig.from_strings({"record": "maybe"})
    with pytest.raises(ConfigError, match="do not start|does not start"):
        describe(LaunchConfig(source="none", node_parameters={"sim_node": {"width": 3}}))


def test_namespace_is_a_ros_namespace_for_every_node() -> None:
    config = LaunchConfig.from_strings({"namespace": "car1/", "record": "true", "output": "bag"})
    assert config.namespace == "/car1"
    specs = describe(config)
    assert [s.namespace for s in specs] == ["/car1"] * 3
    assert ros_args(specs[1])[:5] == ["--ros-args", "-r", "__node:=translate_node", "-r", "__ns:=/car1"]
    assert specs[2].parameters["topics"][0] == "translated/image:sensor_msgs/msg/Image"  # relative: /car1/...
    replay = describe(LaunchConfig.from_strings({"source": "none", "namespace": "/replay",
                                                 "input_namespace": "/sim/camera"}))
    assert dict(replay[0].remappings)["image"] == "/sim/camera/image"  # absolute: outside /replay


def test_record_without_output_gets_a_dated_directory() -> None:
    cfg = LaunchConfig.from_strings({"record": "true"}, now=0.0)
    assert cfg.record and cfg.output.startswith("sim2real_19")


def test_param_values_survive_rcl_yaml_typing() -> None:
    assert format_param_value(True) == "true"
    assert format_param_value(96) == "96" and format_param_value(0.5) == "0.5"
    assert format_param_value("/tmp/a/b.safetensors") == "/tmp/a/b.safetensors"
    assert format_param_value("true") == "'true'" and format_param_value("1.5") == "'1.5'"
    assert format_param_value("a:b") == "'a:b'" and format_param_value("it's") == "'it''s'"
    assert format_param_value(["/a", "/b:pkg/msg/T"]) == "[/a, '/b:pkg/msg/T']"


def test_ros_args_and_runner_command_line() -> None:
    spec = NodeSpec("translate_node", "translate_node", "sim2real.nodes.translate_node",
                    {"model": "/m.safetensors", "warmup_width": 96}, ("/p.yaml",), (("image", "/s/image"),))
    assert ros_args(spec) == ["--ros-args", "-r", "__node:=translate_node", "-r", "image:=/s/image",
                              "--params-file", "/p.yaml", "-p", "model:=/m.safetensors", "-p", "warmup_width:=96"]
    assert node_command(spec)[:4] == [sys.executable, "-m", "sim2real.nodes.start", "translate_node"]


def test_runner_arguments() -> None:
    req = parse_args(["translate", "source:=none", "record:=true", "output:=x", "duration:=2.5",
                      "translate_node.warmup_width:=96", "record_node.topics:=['/a', '/b']"])
    assert req.duration == 2.5
    assert req.config.source == "none" and req.config.output == "x"
    assert req.config.node_parameters == {
        "translate_node": {"warmup_width": 96}, "record_node": {"topics": ["/a", "/b"]}}
    for bad in (["run"], ["translate", "source=builtin"], ["translate", "duration:=-1"], ["translate", "x:=1"]):
        with pytest.raises(ConfigError):
            parse_args(bad)


def test_runner_reads_exponent_numbers_as_rcl_does() -> None:
    """PyYAML reads ``5e-5`` as a string; ``-p`` (rcl) reads it as a double, so the runner must too."""
    req = parse_args(["translate", "sim_node.rate:=5e-1", "sim_node.gain:=-2E3", "sim_node.name:='5e-5'",
                      "sim_node.ratio:=1.5e-3", "sim_node.tag:=5e"])
    params = req.config.node_parameters["sim_node"]
    assert params == {"rate": 0.5, "gain": -2000.0, "name": "5e-5", "ratio": 0.0015, "tag": "5e"}
    assert [type(params[k]) for k in ("rate", "gain", "name", "tag")] == [float, float, str, str]
    assert format_param_value(params["rate"]) == "0.5" and format_param_value(params["name"]) == "'5e-5'"


@pytest.mark.ros
def test_ros_args_give_rcl_the_types_the_runner_read() -> None:
    import rclpy
    from rclpy.parameter import Parameter

    spec = NodeSpec("probe", "probe", "m", dict(parse_args(
        ["translate", "sim_node.rate:=5e-5", "sim_node.name:='5e-5'", "sim_node.width:=96"]
    ).config.node_parameters["sim_node"]))
    context = rclpy.Context()
    rclpy.init(args=["probe", *ros_args(spec)], context=context, domain_id=allocate_domain_id())
    node = rclpy.create_node("probe", context=context, automatically_declare_parameters_from_overrides=True)
    try:
        got = {n: node.get_parameter(n) for n in ("rate", "name", "width")}
        assert got["rate"].type_ == Parameter.Type.DOUBLE and got["rate"].value == 5e-5
        assert got["name"].type_ == Parameter.Type.STRING and got["name"].value == "5e-5"
        assert got["width"].type_ == Parameter.Type.INTEGER and got["width"].value == 96
    finally:
        node.destroy_node()
        context.try_shutdown()


def test_launch_file_describes_the_same_nodes_as_the_runner() -> None:
    if importlib.util.find_spec("launch_ros") is None:
        pytest.skip("launch_ros not installed")
    spec = importlib.util.spec_from_file_location("translate_launch", LAUNCH_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.utilities import perform_substitutions

    from launch import LaunchContext

    ld = module.generate_launch_description()
    declared = [e for e in ld.entities if isinstance(e, DeclareLaunchArgument)]
    assert {d.name: perform_substitutions(LaunchContext(), d.default_value) for d in declared} == {
        name: arg.default for name, arg in ARGUMENTS.items()}
    assert all(d.description for d in declared)
    context = LaunchContext()
    for d in declared:
        d.visit(context)
    context.launch_configurations["record"] = "true"
    context.launch_configurations["output"] = "bags/x"
    (opaque,) = [e for e in ld.entities if isinstance(e, OpaqueFunction)]
    nodes = opaque.execute(context)
    expected = describe(LaunchConfig.from_strings({"record": "true", "output": "bags/x"}))
    assert [n.node_executable for n in nodes] == [s.executable for s in expected]


@pytest.mark.ros
@pytest.mark.parametrize("node", ["translate_node", "record_node"])
def test_a_node_that_dies_makes_the_runner_exit_non_zero(tmp_path: Path, node: str) -> None:
    env = isolated_env(tmp_path / "ros_home")
    existing = tmp_path / "existing"
    existing.mkdir()
    args = {"translate_node": [f"model:={tmp_path / 'missing.safetensors'}"],
            "record_node": [f"model:={make_checkpoint(tmp_path / 'm.safetensors', seed=1)}", "device:=cpu",
                            "record:=true", f"output:={existing}", "translate_node.warmup_width:=0"]}[node]
    result = subprocess.run(
        python_cmd("-m", "sim2real.runtime.launcher", "translate", "source:=builtin", *args, "duration:=120"),
        env=env, capture_output=True, text=True, timeout=150)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    why = {"translate_node": "missing.safetensors' does not exist", "record_node": "existing"}[node]
    assert f"[{node}]: cannot start" in out and why in out, out
    assert [line for line in out.splitlines() if "died with exit status" in line] == [
        f"[sim2real-launch] {node} died with exit status 1: stopped the others"]
    assert "Traceback" not in out


@pytest.mark.ros
def test_runner_starts_sim_translate_and_record_and_the_bag_has_matching_frames(tmp_path: Path) -> None:
    from sim2real.io.bag_reader import BagReader
    from sim2real.translator.inference import Translator

    model = make_checkpoint(tmp_path / "gen.safetensors", seed=3)
    env = isolated_env(tmp_path / "ros_home")
    env["OMP_NUM_THREADS"] = "1"
    bag, stats = tmp_path / "bag", tmp_path / "stats.json"
    topics = [f"/translated/{n}" for n in ("image", "semantic", "instance", "camera_info")] + ["/sim/camera/image"]
    msgtypes = ["sensor_msgs/msg/Image"] * 3 + ["sensor_msgs/msg/CameraInfo", "sensor_msgs/msg/Image"]
    cmd = python_cmd(
        "-m", "sim2real.runtime.launcher", "translate", "source:=builtin", "record:=true", f"output:={bag}",
        f"model:={model}", "device:=cpu", "duration:=600",
        "sim_node.width:=96", "sim_node.height:=64", "sim_node.rate_hz:=8.0",
        "translate_node.precision:=fp32", "translate_node.warmup_width:=96", "translate_node.warmup_height:=64",
        f"translate_node.stats_file:={stats}",
        f"record_node.topics:={json.dumps([*(f'{t}:{typ}' for t, typ in zip(topics, msgtypes, strict=True))])}",
    )
    # start-up (imports, model, warm-up) takes seconds on an idle machine and far more on a loaded one: run the
    # node set 4 s more once all three nodes are up (the recorder re-subscribes the sim's best-effort image topic
    # within a second of discovering it, when the sim started after it), then stop it as a user would (Ctrl-C)
    out = run_until_ready_then_interrupt(cmd, env, tmp_path / "launch.log", run_s=4.0,
                                         ready=("ready:", "recording /translated/image", "publishing 96x64"))
    assert "stopped (SIGINT); exit status 0" in out, out[-4000:]

    translator = Translator.from_checkpoint(model, device="cpu", precision="fp32")
    with BagReader(bag) as reader:
        assert set(topics) <= set(reader.topics), reader.topics
        by_topic: dict[str, dict[int, object]] = {t: {} for t in topics}
        for m in reader.messages(topics):
            by_topic[m.topic][m.stamp_ns] = m.msg
    translated = by_topic["/translated/image"]
    assert len(translated) >= 3, out[-4000:]
    from sim2real.io.conversions import image_to_array

    compared = 0
    for stamp, img in translated.items():
        labels = {n: by_topic[f"/translated/{n}"].get(stamp) for n in ("semantic", "instance", "camera_info")}
        assert all(v is not None for v in labels.values()), f"labels missing for stamp {stamp}"
        assert {img.header.frame_id} == {v.header.frame_id for v in labels.values()}
        assert (img.encoding, img.height, img.width) == ("rgb8", 64, 96)
        sim = by_topic["/sim/camera/image"].get(stamp)  # the translated frame of that very sim frame
        if sim is None:  # the sim topic is best effort: its subscription is re-made after start-up
            continue
        compared += 1
        expected = translator.translate(image_to_array(sim), image_to_array(labels["semantic"]),
                                        image_to_array(labels["instance"]))
        diff = np.abs(image_to_array(img).astype(int) - expected.astype(int))
        assert diff.max() <= 2, f"stamp {stamp}: translated image is not the model's output for the sim frame"
    assert compared >= 3, f"only {compared} translated frames had their sim frame recorded"
    final = json.loads(stats.read_text())
    assert final["accounted"] and final["frames_out"] >= len(translated)


#: long enough for every node to be up before the runner stops them, so that their final lines can be checked
#: (seconds on an idle machine, more than 10 on a loaded CI machine; a node stopped while it still imports exits
#: 0 without them: test_node_start.py)
DURATION_S = 20


@pytest.mark.ros
def test_duration_stops_every_node_cleanly(tmp_path: Path) -> None:
    model = make_checkpoint(tmp_path / "gen.safetensors", seed=4)
    env = isolated_env(tmp_path / "ros_home")
    env["OMP_NUM_THREADS"] = "1"
    bag = tmp_path / "bag"
    cmd = python_cmd("-m", "sim2real.runtime.launcher", "translate", "source:=none", "record:=true", f"output:={bag}",
                     f"model:={model}", "device:=cpu", "translate_node.warmup_width:=0", f"duration:={DURATION_S}")
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=DURATION_S + 120)
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-4000:]
    assert f"stopped (duration {DURATION_S} s); exit status 0" in text, text[-4000:]
    assert "final: in=0 out=0" in text and "accounted=True" in text  # translate_node drained and reported
    assert "closed " in text and (bag / "metadata.yaml").is_file()  # record_node closed the bag


@pytest.mark.ros
def test_a_stop_while_the_nodes_start_is_clean(tmp_path: Path) -> None:
    """duration:=1 stops the nodes while they start (imports, loading the model): each exits 0, no traceback.
    Which stage each node is in varies; test_node_start.py pins the import window itself."""
    model = make_checkpoint(tmp_path / "gen.safetensors", seed=4)
    env = isolated_env(tmp_path / "ros_home")
    cmd = python_cmd("-m", "sim2real.runtime.launcher", "translate", f"model:={model}", "device:=cpu",
                     "translate_node.warmup_width:=0", "duration:=1")
    log = tmp_path / "runner.log"
    with running(cmd, env, log) as proc:  # a failing run: SIGINT makes the runner stop its nodes
        proc.wait(timeout=120)
    text = log.read_text()
    assert proc.returncode == 0 and "stopped (duration 1 s); exit status 0" in text, text[-4000:]
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-4000:]


def run_until_ready_then_interrupt(cmd: list[str], env: dict[str, str], log: Path, *, run_s: float,
                                   ready: tuple[str, ...], timeout_s: float = 120.0) -> str:
    """Start the runner, wait until its output holds every ``ready`` marker, let it run ``run_s`` more seconds,
    send SIGINT and return the whole output once it exited 0 (fails on an early exit or after ``timeout_s``)."""
    import time

    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while not all(marker in log.read_text() for marker in ready):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.2)
        time.sleep(run_s)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, log.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return log.read_text()


def test_every_simulator_adapter_is_a_launch_source() -> None:
    from sim2real.runtime.launch_description import SIMULATORS
    from sim_bridge.adapters import ADAPTERS

    assert sorted(SIMULATORS) == sorted(ADAPTERS)
    spec = describe(LaunchConfig(source="carla_ros_bridge"))[0]
    assert spec.parameters == {"simulator": "carla_ros_bridge", "output_prefix": "sim/camera"}
