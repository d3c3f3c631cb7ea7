"""trainer_node as a real process: progress, diagnostics, save / stop services, errors; launch arguments."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from sim2real.core.errors import ConfigError
from sim2real.nodes.trainer_node import (
    DIAG_ERROR,
    DIAG_OK,
    LAUNCH_ARGUMENTS,
    Progress,
    SaveRequests,
    launch_parameters,
    split_overrides,
)
from sim2real.runtime.launch_description import format_param_value

from ros_testing import isolated_env, python_cmd, running

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "train.launch.py"

# test/test_trainer.py's FAST list, with the periodic work pushed out of the way (the test asks for checkpoints).
FAST = [
    "batch_size=1", "crop=[32,64]", "resize_short=64", "log_every=1", "image_every=1000", "val_every=1000",
    "val_frames=1", "checkpoint_every=1000", "discriminator.base_channels=16", "discriminator.num_scales=1",
    "aux.box_channels=8", "aux.seg_channels=8", "aux.box_hidden=32", "device=cpu",
]


@pytest.fixture(scope="module")
def sim_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sim_bridge.record_cli import main as record_main

    out = tmp_path_factory.mktemp("simbag") / "sim"
    assert record_main(["record", "--frames", "12", "--out", str(out), "--width", "128", "--height", "64"]) == 0
    return out


def node_cmd(overrides: list[str], **extra: Any) -> list[str]:
    """The node's command line, parameters built like the launch file builds them."""
    params = launch_parameters(config="", overrides=" ".join(f"'{o}'" for o in overrides), resume="false")
    params.update(extra)
    args = ["--ros-args"]
    for key, value in params.items():
        args += ["-p", f"{key}:={format_param_value(value)}"]
    return python_cmd("-m", "sim2real.nodes.trainer_node", *args)


class Client:
    """A test-side node on the trainer's domain: progress + diagnostics subscriptions, service clients."""

    def __init__(self, context: Any) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String
        from std_srvs.srv import Trigger

        self.node = rclpy.create_node("trainer_node_test", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.progress: list[dict[str, Any]] = []
        self.diagnostics: list[Any] = []
        self.node.create_subscription(String, "/trainer_node/progress",
                                      lambda m: self.progress.append(json.loads(m.data)),
                                      QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.node.create_subscription(DiagnosticArray, "/diagnostics",
                                      lambda m: self.diagnostics.extend(
                                          s for s in m.status if s.name.startswith("/trainer_node")), 50)
        self.save = self.node.create_client(Trigger, "/trainer_node/save_checkpoint")
        self.stop = self.node.create_client(Trigger, "/trainer_node/stop")
        self.trigger = Trigger.Request

    def spin_until(self, condition: Callable[[], bool], timeout: float, proc: subprocess.Popen, log: Path) -> None:
        """Spin until ``condition()``; fail on timeout or when the node process exits early."""
        deadline = time.monotonic() + timeout
        while not condition():
            if proc.poll() is not None:
                pytest.fail(f"trainer_node exited ({proc.returncode}) early:\n{log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout} s:\n{log.read_text()[-4000:]}")
            self.executor.spin_once(timeout_sec=0.1)

    def call(self, client: Any, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> Any:
        self.spin_until(client.service_is_ready, timeout, proc, log)
        future = client.call_async(self.trigger())
        self.spin_until(future.done, timeout, proc, log)
        return future.result()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.mark.ros
def test_progress_save_checkpoint_and_stop(tmp_path: Path, sim_bag: Path, shared_data: Path, ros_context: Any) -> None:
    run = tmp_path / "run"
    overrides = [*FAST, f"out_dir={run}", "steps=1000", "source.kind=bag", f"source.paths=[{sim_bag}]",
                 f"target.paths=[{shared_data / 'real' / 'seq0000'}]"]
    env = isolated_env(tmp_path / "ros_home", domain_id=ros_context.get_domain_id())
    env["OMP_NUM_THREADS"] = "1"
    log = tmp_path / "node.log"
    client = Client(ros_context)
    try:
        with running(node_cmd(overrides, diagnostics_period_s=0.5), env, log) as proc:
            client.spin_until(lambda: len(client.progress) >= 3, 90, proc, log)
            steps = [p["step"] for p in client.progress]
            assert steps == list(range(steps[0], steps[0] + len(steps))), f"log_every=1: consecutive, got {steps}"
            for p in client.progress:
                assert p["steps"] == 1000
                assert {"g/total", "d/total", "aux/total"} <= set(p["losses"])
                assert all(isinstance(v, float) and math.isfinite(v) for v in p["losses"].values()), p
            last = client.progress[-1]
            assert last["steps_per_s"] > 0 and last["eta_s"] > 0

            seen = client.progress[-1]["step"]
            reply = client.call(client.save, proc, log)
            assert reply.success, reply.message
            ckpt = Path(reply.message)
            saved_step = int(ckpt.name.removeprefix("step_"))
            assert ckpt.parent == run / "checkpoints" and ckpt.name == f"step_{saved_step:08d}"
            assert saved_step >= seen, "saved at the next step boundary after the request"
            assert ckpt.is_dir() and (ckpt / "state.json").is_file() and (ckpt / "generator.safetensors").is_file()

            client.spin_until(lambda: any(s.level == bytes([DIAG_OK]) and
                                          {kv.key: kv.value for kv in s.values}.get("state") == "training"
                                          for s in client.diagnostics), 30, proc, log)
            values = {kv.key: kv.value for kv in client.diagnostics[-1].values}
            assert values["device"] == "cpu" and values["out_dir"] == str(run)
            assert int(values["step"]) >= 1 and "g/total" in values and values["eta_s"]

            reply = client.call(client.stop, proc, log)
            assert reply.success and "stopping" in reply.message, reply.message
            assert proc.wait(timeout=60) == 0, log.read_text()[-4000:]
    finally:
        client.close()
    text = log.read_text()
    assert (run / "model.safetensors").is_file(), text[-4000:]
    assert "stopped at step" in text and "exported" in text
    final_name = json.loads((run / "checkpoints" / "latest.json").read_text())["checkpoint"]
    final_step = int(final_name.removeprefix("step_"))
    assert saved_step <= final_step < 1000, "stopped early, after the requested checkpoint"
    assert final_step >= max(p["step"] for p in client.progress)

    from sim2real.translator.checkpoint import load_checkpoint

    exported = load_checkpoint(run / "model.safetensors", map_location="cpu")
    assert exported.metadata["training_data"]["steps"] == final_step


@pytest.mark.ros
def test_training_error_is_an_error_diagnostic_and_exit_1(tmp_path: Path, sim_bag: Path,
                                                         ros_context: Any) -> None:
    empty = tmp_path / "no_images"
    empty.mkdir()
    overrides = [*FAST, f"out_dir={tmp_path / 'run'}", "steps=10", "source.kind=bag", f"source.paths=[{sim_bag}]",
                 f"target.paths=[{empty}]"]
    env = isolated_env(tmp_path / "ros_home", domain_id=ros_context.get_domain_id())
    env["OMP_NUM_THREADS"] = "1"
    log = tmp_path / "node.log"
    client = Client(ros_context)
    try:
        with running(node_cmd(overrides, diagnostics_period_s=0.2, error_linger_s=3.0), env, log) as proc:
            client.spin_until(lambda: any(s.level == bytes([DIAG_ERROR]) for s in client.diagnostics), 60, proc, log)
            assert proc.wait(timeout=30) == 1, log.read_text()[-4000:]
    finally:
        client.close()
    error = next(s for s in client.diagnostics if s.level == bytes([DIAG_ERROR]))
    assert "training failed" in error.message and "no image files" in error.message
    assert {kv.key: kv.value for kv in error.values}["state"] == "error"
    assert "Traceback" in log.read_text()


@pytest.mark.ros
def test_invalid_override_parameter_is_refused_at_start(tmp_path: Path) -> None:
    env = isolated_env(tmp_path / "ros_home")
    cmd = python_cmd("-m", "sim2real.nodes.trainer_node", "--ros-args", "-p", "overrides:=['steps100']")
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "cannot start" in out and "steps100" in out and "key.sub=value" in out


def test_launch_arguments_become_node_parameters() -> None:
    assert launch_parameters("c.yaml", "steps=4 'crop=[32, 64]' losses.bbox=2", "false") == {
        "config": "c.yaml", "resume": False, "overrides": ["steps=4", "crop=[32, 64]", "losses.bbox=2"]}
    assert launch_parameters("", "", "true", "/m/x.safetensors") == {
        "config": "", "resume": True, "export": "/m/x.safetensors"}
    assert {n: a[0] for n, a in LAUNCH_ARGUMENTS.items()} == {
        "config": "", "overrides": "", "resume": "true", "export": ""}
    for bad in ("steps", "=3", "'unclosed"):
        with pytest.raises(ConfigError):
            split_overrides(bad)
    with pytest.raises(ConfigError, match="true or false"):
        launch_parameters("", "", "maybe")


def test_progress_rate_eta_and_json() -> None:
    progress = Progress(steps=100, started=0.0)
    progress.begin(10, now=0.0)
    assert progress.eta_s is None
    progress.update(20, {"g/total": 1.5, "d/total": float("nan")}, now=5.0)
    assert progress.steps_per_s == pytest.approx(2.0) and progress.eta_s == pytest.approx(40.0)
    doc = json.loads(progress.to_json(now=6.0))
    assert doc == {"step": 20, "steps": 100, "losses": {"g/total": 1.5, "d/total": None}, "steps_per_s": 2.0,
                   "eta_s": 40.0, "elapsed_s": 6.0}
    level, message, _ = progress.diagnostic({})
    assert level == DIAG_OK and "step 20/100" in message
    progress.state, progress.error = "error", "ConfigError: boom"
    assert progress.diagnostic({})[0] == DIAG_ERROR


def test_save_requests_are_answered_together_and_refused_after_close() -> None:
    requests = SaveRequests()
    futures: list[Future[str]] = []
    threads = [threading.Thread(target=lambda: futures.append(requests.request())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    SaveRequests.resolve(requests.take(), path="/ckpt/step_00000007")
    assert [f.result(timeout=1) for f in futures] == ["/ckpt/step_00000007"] * 3
    withdrawn = requests.request()
    assert withdrawn.cancel()
    SaveRequests.resolve(requests.close("training has ended"), path="/x")  # a cancelled request is skipped
    with pytest.raises(RuntimeError, match="training has ended"):
        requests.request().result(timeout=1)


def test_launch_file_declares_described_arguments_and_the_node() -> None:
    if importlib.util.find_spec("launch_ros") is None:
        pytest.skip("launch_ros not installed")
    spec = importlib.util.spec_from_file_location("train_launch", LAUNCH_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from launch import LaunchContext

    ld = module.generate_launch_description()
    declared = [e for e in ld.entities if isinstance(e, DeclareLaunchArgument)]
    assert {d.name for d in declared} == set(LAUNCH_ARGUMENTS) and all(d.description for d in declared)
    context = LaunchContext()
    for d in declared:
        d.visit(context)
    context.launch_configurations["overrides"] = "steps=4 device=cpu"
    (opaque,) = [e for e in ld.entities if isinstance(e, OpaqueFunction)]
    (node,) = opaque.execute(context)
    assert node.node_executable == "trainer_node"
