"""translate_node: simulator RGB + semantic + instance in, photorealistic RGB + the unchanged labels out.

Topics (generic names, remapped by the launch file / ``sim2real-launch``; e.g. ``-r image:=/sim/camera/image``):

=========================== ============================= ===================================================
subscribed                  type                          notes
=========================== ============================= ===================================================
``image``                   sensor_msgs/Image             any colour or mono encoding ``to_rgb8`` reads
``semantic``                sensor_msgs/Image             mono8 / 8UC1, canonical train ids (0..18, 255)
``instance``                sensor_msgs/Image             16UC1 / mono16 (8-bit accepted), 0 = no instance
``camera_info``             sensor_msgs/CameraInfo        part of the synchronised set (``sync_camera_info``)
=========================== ============================= ===================================================

Published: ``translated/image`` (header = the input image's header, exactly; encoding ``output_encoding``),
``translated/semantic``, ``translated/instance``, ``translated/camera_info`` (the *same* message objects that
were received, republished: every field and payload byte identical, same header), ``translated/preview``
(sim | translated | label overlay, at most ``preview_rate_hz``; 0 = off) and ``/diagnostics``
(``diagnostics_period_s``).

Inputs use sensor-data QoS (best effort, depth 5) and outputs reliable depth 5; both are overridable per topic
from a params file (``qos_overrides./<resolved topic>.subscription|publisher.reliability|depth|history``).

Data flow: the four subscriptions (one mutually exclusive callback group) read the header stamp (the image
callback also checks the image's layout without reading pixels, :func:`check_image_message`, so a malformed
image is counted on arrival) and feed :class:`~sim2real.io.sync.StampSynchronizer`; a complete set goes into the
camera's keep-latest slot (:class:`~sim2real.io.sync.KeyedLatestSlots`; a set not yet taken is dropped as
``superseded``), and one worker thread, woken by the slots' condition variable, decodes, translates and
publishes. Subscriptions are never blocked by inference; a frame older than one already published is never
published (dropped as ``stale``).

Missing labels: when a required label topic has been silent for ``label_timeout_s`` a warning names it
(repeated every ``label_timeout_s``), and ``label_policy`` decides: ``wait`` keeps waiting (images drop as
``sync_overflow`` / ``unmatched``), ``translate_without_instances`` translates images alone with semantic = 255
and instance = 0 (labels are not republished then), ``passthrough`` republishes the input image unchanged as
``translated/image``.

Accounting: see :mod:`sim2real.runtime.node_stats`. ``stats_file`` (when set) receives the final counters as JSON at
shutdown, where ``frames_in == frames_out + dropped_total`` holds; the last log line says the same.

Inference backend (``backend``, read-only): ``auto`` (default) runs onnxruntime on the CPU in fp32 (the graph
is exported for the warm-up size at start-up, and for any new frame size on its first frame, then cached
under ``~/.cache/sim2real/onnx`` keyed by the checkpoint's tensor digest and the size) and eager torch on CUDA;
``torch`` / ``onnxruntime`` force one (onnxruntime: CPU and fp32 only, else the node does not start).

Parameters are declared once with descriptors (ranges, read-only) and validated in a set-parameters
callback; ``model`` may be changed at run time: the new checkpoint is loaded (and warmed up) inside the
parameter request and the change is rejected, with the reason, if it does not load, keeping the old model.
Several cameras: ``cameras:=['/front', '/left']`` makes one node serve each namespace (inputs ``<ns>/image``
..., outputs ``translated/<ns>/image`` ..., each with its own synchroniser, label watch and keep-latest slot);
the worker takes the newest pending set of every camera at once and translates frames of one size in batches
of up to ``max_batch``. Empty ``cameras`` (default) = one camera on the generic names above.

The node is composed of parts with one job each (:mod:`sim2real.nodes.translate`): ``params`` (declaration and
checks), ``model`` (load, warm-up, run-time switch), ``inputs`` (subscriptions, synchronisers, label watch),
``worker`` (decode, batch, translate, publish), ``report`` (logging, diagnostics, final counters) and the pure
``frames`` logic.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Final

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from sim2real.core.errors import Sim2RealError
from sim2real.nodes.common import OrderlyMultiThreadedExecutor, check_writable_file, exit_node, run_node
from sim2real.nodes.translate.frames import CAMERA_INFO, COMPRESSED, IMAGE, INSTANCE, SEMANTIC
from sim2real.nodes.translate.inputs import FrameInputs
from sim2real.nodes.translate.model import ModelSlot, TranslatorFactory, inference_threads, load_translator
from sim2real.nodes.translate.params import LiveSettings, check_change, check_start, parameter_table
from sim2real.nodes.translate.report import Reporter
from sim2real.nodes.translate.worker import TranslateWorker
from sim2real.runtime.node_stats import NodeStats

#: re-exported: the checkpoint loader (the pure frame logic is in sim2real.nodes.translate.frames)
__all__ = ["TranslateNode", "load_translator", "main"]

NODE_NAME: Final = "translate_node"


class TranslateNode(Node):
    """The ROS layer: parameters, model, inputs, worker, outputs and diagnostics (see the module doc)."""

    def __init__(self, *, translator_factory: TranslatorFactory = load_translator, **node_kwargs: Any) -> None:
        """Declare parameters, load + warm up the model, then subscribe. Raises Sim2RealError on bad config."""
        super().__init__(NODE_NAME, **node_kwargs)
        for name, default, desc in parameter_table():
            self.declare_parameter(name, default, desc)
        p = {name: self.get_parameter(name).value for name, _, _ in parameter_table()}
        check_start(p)
        keys = [c.strip() for c in p["cameras"] if c.strip()] or [""]
        if len(set(keys)) != len(keys):
            raise Sim2RealError(f"cameras must be distinct, got {keys}")
        self._stats_file: str = p["stats_file"]
        if self._stats_file:
            check_writable_file("stats_file", self._stats_file)
        self.settings = LiveSettings.from_params(p)

        import torch  # here, not at import: main() sets OMP_WAIT_POLICY before torch loads OpenMP

        self._threads = inference_threads(p["threads"])
        torch.set_num_threads(self._threads)  # the Translator's onnxruntime sessions take the same count
        self.get_logger().info(
            f"loading model {p['model']} (device={p['device']}, precision={p['precision']},"
            f" backend={p['backend']}, style={p['style'] or 'mean'}, {self._threads} CPU thread(s),"
            f" onnx_spin_us={p['onnx_spin_us']}, onnx_int8={p['onnx_int8']})")
        if p["style"]:  # read-only: every model this node loads renders in that style
            translator_factory = functools.partial(translator_factory, style=p["style"])
        if p["onnx_spin_us"]:  # read-only, like style: passed to every model this node loads
            translator_factory = functools.partial(translator_factory, onnx_spin_us=p["onnx_spin_us"])
        if not p["onnx_int8"]:  # read-only: fp32 graphs for every model this node loads
            translator_factory = functools.partial(translator_factory, onnx_int8=False)
        self.model = ModelSlot(translator_factory, p["model"], device=p["device"], precision=p["precision"],
                               backend=p["backend"], logger=self.get_logger())
        if p["onnx_spin_us"] and (self._threads < 2 or getattr(self.model.translator, "backend", "") != "onnxruntime"):
            self.get_logger().warning(
                f"onnx_spin_us={p['onnx_spin_us']} does nothing here: it acts on onnxruntime's extra inference threads"
                f" (backend {getattr(self.model.translator, 'backend', 'torch')}, {self._threads} thread(s))")
        if p["warmup_width"] > 0 and p["warmup_height"] > 0:
            self.model.warmup(p["warmup_height"], p["warmup_width"], min(len(keys), p["max_batch"]))
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

        self.stats = NodeStats(reference_topic=IMAGE)
        self.reporter = Reporter(self, self.stats)
        label_topics = [SEMANTIC, INSTANCE] + ([CAMERA_INFO] if p["sync_camera_info"] else [])
        self.inputs = FrameInputs(
            keys, label_topics, slop=p["sync_slop_s"], queue_size=p["sync_queue_size"],
            time_jump_s=p["time_jump_s"], settings=self.settings, reporter=self.reporter,
            max_pixels=p["max_image_pixels"], logger=self.get_logger(), input_transport=p["input_transport"])
        self.worker = TranslateWorker(self.inputs, self.model, self.settings, self.reporter, max_batch=p["max_batch"])
        self._create_io(p)

    def _create_io(self, p: dict[str, Any]) -> None:
        """Publishers, worker, timers and (last) the subscriptions."""
        out_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        overrides = QoSOverridingOptions.with_default_policies()
        for cam in self.inputs.cameras.values():
            for name in (IMAGE, *self.inputs.label_topics):
                cam.pubs[name] = self.create_publisher(
                    CameraInfo if name == CAMERA_INFO else Image, cam.outputs[name], out_qos,
                    qos_overriding_options=overrides)
            cam.pubs["preview"] = self.create_publisher(Image, cam.outputs["preview"], out_qos)
            if p["compressed_output"]:
                cam.pubs[COMPRESSED] = self.create_publisher(CompressedImage, cam.outputs[COMPRESSED], out_qos)
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.worker.start()

        timers = MutuallyExclusiveCallbackGroup()
        self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics, callback_group=timers)
        if p["summary_period_s"] > 0:
            self.create_timer(p["summary_period_s"], self._log_summary, callback_group=timers)
        self.inputs.subscribe(self, MutuallyExclusiveCallbackGroup(), overrides)
        for cam in self.inputs.cameras.values():
            self.get_logger().info(
                f"camera {cam.key or '(generic names)'}: {cam.topic(IMAGE)} + "
                f"{', '.join(cam.topic(t) for t in self.inputs.label_topics)} -> {cam.pubs[IMAGE].topic_name}"
            )
        self.get_logger().info(
            f"ready: model {self.model.translator.model_name} on {self.model.translator.device};"
            f" {len(self.inputs.cameras)} camera(s), batches of up to {self.worker.max_batch};"
            f" label_policy={self.settings.label_policy}"
        )

    # ------------------------------------------------------------------------------------------- parameters
    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Reject invalid values with a reason; load (and warm up) a new model before accepting it."""
        model: str | None = None
        for param in params:
            reason = check_change(param.name, param.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            if param.name == "model":
                model = str(param.value)
        if model is not None:
            reason = self.model.stage(model, self.worker.last_size)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        for param in params:
            if param.name.startswith("qos_overrides."):
                continue  # declared (read-only) by the QoS overriding options: nothing to apply
            if param.name == "model":
                self.model.commit(param.value)
            else:
                self.settings.apply(param.name, param.value)
            self.get_logger().info(f"parameter {param.name} = {param.value!r}")

    # ---------------------------------------------------------------------------------- diagnostics, stop
    def info(self) -> dict[str, Any]:
        """Device, precision, model and policies (for diagnostics and the summary)."""
        return {
            **self.model.info(),
            "threads": self._threads,
            "label_policy": self.settings.label_policy,
            "output_encoding": self.settings.output_encoding,
            "cameras": ", ".join(cam.topic(IMAGE) for cam in self.inputs.cameras.values()),
        }

    def _publish_diagnostics(self) -> None:
        self.reporter.publish_diagnostics(self._pub_diag, str(self.model.translator.device), self.info(),
                                          self.inputs.warnings())

    def _log_summary(self) -> None:
        self.reporter.log_summary(self.model.translator.model_name)

    def stop(self) -> dict[str, Any]:
        """Finish the frame in progress, count what is still queued as ``pending_at_shutdown``, write
        ``stats_file``; return the final snapshot. Call after the executor stopped spinning."""
        self.inputs.close()
        self.worker.join(timeout=30.0)
        self.inputs.clear()
        return self.reporter.final(self.info(), self._stats_file)


def main(args: list[str] | None = None) -> int:
    """Entry point (``translate_node``): run until SIGINT/SIGTERM; 1 when the configuration is invalid.

    Sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it (before torch loads OpenMP): the node
    shares the CPU with the simulator and DDS, and OpenMP threads that busy-wait between the network's many
    small operators then take the cores the working thread needs (measured, lite 640x360 on 2 shared
    cores, 2 intra-op threads: ~1.5-1.9 s/frame busy-waiting vs ~0.15 s/frame passive).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return run_node(TranslateNode, NODE_NAME, lambda: OrderlyMultiThreadedExecutor(num_threads=3), args)


if __name__ == "__main__":
    exit_node(main())
