"""The inference thread of translate_node: take the newest pending frame set of every camera, decode it,
translate frames of one size in batches, publish the translated image with the input's header, the labels
unchanged and (rate-limited) the preview. A frame older than one already published is never published
(dropped as ``stale``); one bad frame or batch never ends the thread."""

from __future__ import annotations

import time

import numpy as np

from sim2real.core.errors import ImageConversionError, LabelError
from sim2real.io.conversions import array_to_compressed, array_to_image
from sim2real.nodes.common import guarded_thread
from sim2real.nodes.translate.frames import (
    CAMERA_INFO,
    COMPRESSED,
    IMAGE,
    INSTANCE,
    SEMANTIC,
    Frame,
    FrameError,
    compose_preview,
    decode_frame,
    encode_output,
    input_encoding,
    instances_without_class,
)
from sim2real.nodes.translate.inputs import Camera, FrameInputs
from sim2real.nodes.translate.model import ModelSlot
from sim2real.nodes.translate.params import LiveSettings
from sim2real.nodes.translate.report import Reporter

__all__ = ["TranslateWorker"]

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]  # rgb (H, W, 3) uint8, semantic (H, W) uint8, instance uint16


class TranslateWorker:
    """Decode, batch, translate and publish on one thread woken by the inputs' keep-latest slots."""

    def __init__(self, inputs: FrameInputs, model: ModelSlot, settings: LiveSettings, reporter: Reporter,
                 *, max_batch: int) -> None:
        """The worker of ``inputs`` (its cameras and slots); start it with :meth:`start`."""
        self.inputs, self.model, self.settings, self.reporter = inputs, model, settings, reporter
        self.stats = reporter.stats
        self.max_batch = max_batch
        #: (height, width) of the last decoded frame (a new model is warmed up at this size)
        self.last_size: tuple[int, int] | None = None
        self._thread = guarded_thread(self._work, "translate_worker")  # its death stops the node: no zombie

    def start(self) -> None:
        """Start the thread (it ends when the slots are closed and empty)."""
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) for the thread to finish the frame in progress."""
        self._thread.join(timeout=timeout)

    def _work(self) -> None:
        while batch := self.inputs.slots.take_all():
            try:
                self._process_batch(list(batch.values()))
            except Exception as exc:  # the worker never dies on one batch
                self.stats.drop("internal_error", n=len(batch))
                self.reporter.log_bad("(worker)", "internal_error", repr(exc))

    def _camera(self, frame: Frame) -> Camera:
        return self.inputs.cameras[frame.camera]

    def _decode(self, frame: Frame) -> Arrays | None:
        """Decoded arrays of a frame, or None (counted, logged) when it is stale or malformed."""
        cam = self._camera(frame)
        last = cam.last_published_ns
        if last is not None and frame.epoch == cam.published_epoch and frame.stamp_ns <= last:
            self.stats.drop("stale")
            return None
        try:
            rgb, semantic, instance = decode_frame(frame, self.inputs.max_pixels)
        except FrameError as err:
            self.stats.bad_message(err.topic, err.reason)
            self.stats.drop("bad_message")
            self.reporter.log_bad(cam.topic(err.topic), err.reason, err.detail, frame.stamp_ns)
            return None
        stray = instances_without_class(semantic, instance)
        if stray.any():  # translated anyway, without those instances: counted and logged, not dropped
            self.stats.bad_message(INSTANCE, "instance_without_class")
            self.reporter.log_bad(
                cam.topic(INSTANCE), "instance_without_class",
                f"{int(stray.sum())} instance pixels lie on stuff / ignore classes; treated as no instance",
                frame.stamp_ns)
            instance = np.where(stray, 0, instance).astype(np.uint16)
        return rgb, semantic, instance

    def _process_batch(self, frames: list[Frame]) -> None:
        """Decode, translate (frames of one size in batches of up to max_batch), publish each."""
        groups: dict[tuple[int, int], list[tuple[Frame, Arrays]]] = {}
        for frame in frames:
            arrays = self._decode(frame)
            if arrays is None:
                continue
            self.last_size = arrays[0].shape[:2]
            if frame.mode == "passthrough":
                self._publish_frame(frame, arrays[0], arrays[1], None)
                continue
            groups.setdefault(arrays[0].shape[:2], []).append((frame, arrays))
        for group in groups.values():
            for start in range(0, len(group), self.max_batch):
                self._translate_batch(group[start : start + self.max_batch])

    def _translate_batch(self, batch: list[tuple[Frame, Arrays]]) -> None:
        translator = self.model.translator
        t0 = time.perf_counter()
        try:
            if len(batch) == 1:
                outputs = [np.asarray(translator.translate(*batch[0][1]))]
            else:
                stacked = [np.stack([arrays[k] for _, arrays in batch]) for k in range(3)]
                outputs = list(np.asarray(translator.translate(*stacked)))
        except (LabelError, ValueError) as exc:
            if len(batch) > 1:  # find the culprit: translate one by one
                for item in batch:
                    self._translate_batch([item])
                return
            frame = batch[0][0]
            topic = INSTANCE if "instance" in str(exc) else SEMANTIC
            self.stats.bad_message(topic, "label_values")
            self.stats.drop("bad_message")
            self.reporter.log_bad(self._camera(frame).topic(topic), "label_values", str(exc), frame.stamp_ns)
            return
        except Exception as exc:
            self.stats.drop("inference_error", n=len(batch))
            self.reporter.log_bad("(inference)", "inference_error", repr(exc), batch[0][0].stamp_ns)
            return
        self.stats.inference.add(time.perf_counter() - t0)
        self.stats.count("batches")
        self.stats.count(f"batch_size_{len(batch)}")
        for (frame, (rgb, semantic, _instance)), translated in zip(batch, outputs, strict=True):
            self._publish_frame(frame, rgb, semantic, translated)

    def _publish_frame(self, frame: Frame, rgb: np.ndarray, semantic: np.ndarray,
                       translated: np.ndarray | None) -> None:
        """Publish the translated image (``None``: passthrough, the input message), labels and preview."""
        cam = self._camera(frame)
        if translated is None:  # passthrough: the input image (decoded to rgb8 when it came compressed)
            translated, array, encoding = rgb, rgb, "rgb8"
            out_msg = frame.image if hasattr(frame.image, "encoding") else array_to_image(rgb, "rgb8")
        else:
            wanted = input_encoding(frame.image)
            array, encoding, exact = encode_output(translated, self.settings.output_encoding, wanted)
            if not exact:
                self.reporter.log_bad(cam.topic(IMAGE), "output_encoding",
                                      f"output_encoding=input cannot write {wanted!r}; publishing rgb8")
            out_msg = array_to_image(array, encoding)
        out_msg.header = frame.image.header
        if not self.reporter.publish(cam.pubs[IMAGE], out_msg):
            self.stats.drop("publish_error")
            return
        self._publish_compressed(cam, array, encoding, frame)
        self.stats.end_to_end.add(time.monotonic() - frame.received)
        self.stats.frame_out()
        cam.last_published_ns, cam.published_epoch = frame.stamp_ns, frame.epoch
        for topic, msg in ((SEMANTIC, frame.semantic), (INSTANCE, frame.instance), (CAMERA_INFO, frame.camera_info)):
            if msg is not None and topic in cam.pubs:
                self.reporter.publish(cam.pubs[topic], msg)
        self._publish_preview(cam, frame, rgb, translated, semantic)

    def _publish_compressed(self, cam: Camera, array: np.ndarray, encoding: str, frame: Frame) -> None:
        """translated/image/compressed, encoded only while it has a subscriber (like image_transport)."""
        publisher = cam.pubs.get(COMPRESSED)
        if publisher is None or publisher.get_subscription_count() == 0:
            return
        s = self.settings
        try:
            msg = array_to_compressed(array, encoding, s.compressed_format, s.jpeg_quality, frame.image.header,
                                      png_level=s.png_level)
        except ImageConversionError as exc:  # e.g. jpeg of a 16-bit image: counted and logged, raw still out
            self.stats.count("compress_error")
            self.reporter.log_bad(publisher.topic_name, "compress", str(exc), frame.stamp_ns)
            return
        if self.reporter.publish(publisher, msg):
            self.stats.count("compressed_out")

    def _publish_preview(self, cam: Camera, frame: Frame, rgb: np.ndarray, translated: np.ndarray,
                         semantic: np.ndarray) -> None:
        """sim | translated | overlay, at most ``preview_rate_hz`` per camera (0 = off)."""
        rate = self.settings.preview_rate_hz
        if rate <= 0 or time.monotonic() - cam.last_preview < 1.0 / rate:
            return
        cam.last_preview = time.monotonic()
        preview = array_to_image(compose_preview(rgb, translated, semantic), "rgb8")
        preview.header = frame.image.header
        self.reporter.publish(cam.pubs["preview"], preview)
