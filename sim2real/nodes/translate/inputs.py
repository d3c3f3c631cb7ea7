"""The input side of translate_node: per camera, the subscriptions, the stamp synchroniser and the label watch,
feeding complete frame sets into the keep-latest slots the worker takes from.

Synchroniser drops are counted by reason and logged rate-limited, except the messages left without partners
before a camera's first complete set, within ``STARTUP_S`` of its first message (its subscriptions matched the
publishers at different moments): those are counted as ``unmatched_at_start``, reported once at INFO and then at
DEBUG. A time jump of the stamps (see
:class:`~sim2real.io.sync.StampSynchronizer`, parameter ``time_jump_s``) is logged, counted
(``count.time_jump_backward`` / ``_forward``) and, going backward, starts a new time line for the camera so that
its frames are not dropped as ``stale``.

Callbacks stay thin: they read the header stamp (the image callback also checks the image's layout without
reading pixels, so a malformed image is counted on arrival) and feed the camera's
:class:`~sim2real.io.sync.StampSynchronizer`; a complete set goes into the camera's slot
(:class:`~sim2real.io.sync.KeyedLatestSlots`); a set not yet taken is dropped as ``superseded``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from sim2real.io.sync import KeyedLatestSlots, StampSynchronizer, stamp_to_ns
from sim2real.nodes.translate.frames import CAMERA_INFO, IMAGE, Frame, FrameError, camera_topics, check_image_message
from sim2real.nodes.translate.params import LiveSettings
from sim2real.nodes.translate.report import Reporter

__all__ = ["STARTUP_S", "Camera", "FrameInputs"]

#: seconds after a camera's first message during which unmatched messages (before its first complete set) are
#: the start-up kind; later ones are warned about (e.g. label stamps that never match the image's)
STARTUP_S: Final = 5.0

#: synchroniser drop reasons that are logged (rate-limited) as well as counted, with what they mean
SYNC_DROP_DETAILS: Final = {
    "unmatched": "no complete set with this stamp: its partners never came, or its stamp is not newer than"
                 " the last synchronised set's",
    "duplicate_stamp": "replaced by a later message with the same stamp",
    "sync_overflow": "sync queue full (sync_queue_size) while waiting for its partners",
}
_POLICY_ACTIONS: Final = {
    "wait": "waiting for them: images are not translated (dropped as sync_overflow/unmatched)",
    "translate_without_instances": "translating images alone with semantic=255, instance=0",
    "passthrough": "republishing the input image unchanged as translated/image",
}


@dataclass
class Camera:
    """Per-camera state: topic names, synchroniser, label watch, publishers and subscriptions."""

    key: str  # "" for the single generic camera, else the namespace given in ``cameras``
    inputs: dict[str, str]  # generic name -> topic to subscribe
    outputs: dict[str, str]  # image, semantic, instance, camera_info, preview -> topic to publish
    sync: StampSynchronizer[tuple[Any, float]]
    last_seen: dict[str, float]
    missing: list[str] = field(default_factory=list)
    last_published_ns: int | None = None
    epoch: int = 0  # +1 at each backward time jump; frames of an older epoch never make newer ones stale
    published_epoch: int = 0  # the epoch of the frame last published
    first_message: float | None = None  # time.monotonic() of the first message on any of its inputs
    last_preview: float = -float("inf")
    subs: dict[str, Any] = field(default_factory=dict)
    pubs: dict[str, Any] = field(default_factory=dict)

    def topic(self, name: str) -> str:
        """The resolved name of input ``name`` once subscribed, else its configured name."""
        sub = self.subs.get(name)
        return sub.topic_name if sub is not None else self.inputs.get(name, name)


class FrameInputs:
    """Cameras, their synchronisers and label watches; the subscription callbacks; the hand-off slots."""

    def __init__(self, keys: list[str], label_topics: list[str], *, slop: float, queue_size: int,
                 time_jump_s: float, settings: LiveSettings, reporter: Reporter, max_pixels: int | None,
                 logger: Any, input_transport: str = "raw") -> None:
        """One :class:`Camera` per key (``""``: the generic names), all label watches starting now."""
        self.label_topics = label_topics
        self.image_type = CompressedImage if input_transport == "compressed" else Image
        self.settings, self.reporter, self.stats = settings, reporter, reporter.stats
        self.max_pixels = max_pixels
        self.slots: KeyedLatestSlots[str, Frame] = KeyedLatestSlots()
        self._logger = logger
        started = time.monotonic()
        self._started_unmatched: dict[str, bool] = {}
        self.cameras: dict[str, Camera] = {}
        for key in keys:
            inputs, outputs = camera_topics(key, input_transport)
            self.cameras[key] = Camera(
                key=key, inputs=inputs, outputs=outputs,
                sync=StampSynchronizer(
                    [IMAGE, *label_topics], slop=slop, queue_size=queue_size,
                    on_drop=lambda topic, reason, item, k=key: self._on_sync_drop(k, topic, reason, item),
                    jump_threshold=time_jump_s or None,
                    on_jump=lambda direction, last, new, k=key: self._on_time_jump(k, direction, last, new),
                ),
                last_seen=dict.fromkeys(label_topics, started),
            )

    def subscribe(self, node: Any, callback_group: Any, qos_overriding_options: Any) -> None:
        """Create every camera's subscriptions (call last, once the publishers and the worker exist)."""
        for cam in self.cameras.values():
            cam.subs[IMAGE] = node.create_subscription(
                self.image_type, cam.inputs[IMAGE], lambda msg, c=cam: self._on_image(c, msg), qos_profile_sensor_data,
                callback_group=callback_group, qos_overriding_options=qos_overriding_options)
            for topic in self.label_topics:
                cam.subs[topic] = node.create_subscription(
                    CameraInfo if topic == CAMERA_INFO else Image, cam.inputs[topic],
                    lambda msg, c=cam, t=topic: self._on_label(c, t, msg), qos_profile_sensor_data,
                    callback_group=callback_group, qos_overriding_options=qos_overriding_options,
                )

    # -------------------------------------------------------------------------------------------- callbacks
    def _on_sync_drop(self, key: str, topic: str, reason: str, item: tuple[Any, float]) -> None:
        """Count a message the synchroniser dropped; log it (rate-limited; start-up ones at INFO, then DEBUG)."""
        cam = self.cameras[key]
        stamp = stamp_to_ns(item[0].header.stamp)
        first = cam.first_message
        if reason == "unmatched" and cam.sync.emitted == 0 and first is not None \
                and time.monotonic() - first < STARTUP_S:
            self.stats.drop("unmatched_at_start", topic)
            level = "debug" if self._started_unmatched.get(key) else "info"
            self._started_unmatched[key] = True
            self.reporter.log_limited("start-up: dropped a message on", cam.topic(topic), "unmatched_at_start",
                                      "no partners before the first complete set (the subscriptions matched the"
                                      " publishers at different moments)", stamp, level=level)
            return
        self.stats.drop(reason, topic)
        detail = SYNC_DROP_DETAILS.get(reason)
        if detail is not None:
            self.reporter.log_limited("dropped a message on", cam.topic(topic), reason, detail, stamp)

    def _on_time_jump(self, key: str, direction: str, last_ns: int, new_ns: int) -> None:
        """Count and log a time jump of a camera's stamps; backward: a new time line for the camera."""
        cam = self.cameras[key]
        self.stats.count(f"time_jump_{direction}")
        if direction == "backward":
            cam.epoch += 1
            action = "synchroniser reset, translating the new time line"
        else:
            action = "translated as stamped; stamps that then go back reset the synchroniser"
        # backward resets state: WARN; forward changes nothing and is also what lost messages look like on a
        # loaded machine (a starved subscriber misses a second of frames): INFO, still counted
        # (one call site per severity: rclpy refuses to change a call site's severity)
        text = (f"time jump on {cam.topic(IMAGE)}: stamps went {direction} from {last_ns / 1e9:.9f} s"
                f" to {new_ns / 1e9:.9f} s: {action}")
        if direction == "backward":
            self._logger.warning(text)
        else:
            self._logger.info(text)

    def _on_image(self, cam: Camera, msg: Any) -> None:
        received = time.monotonic()
        cam.first_message = cam.first_message or received
        self.stats.message_in(IMAGE)
        try:
            stamp = stamp_to_ns(msg.header.stamp)
            try:
                check_image_message(msg, self.max_pixels)
            except FrameError as err:
                self.stats.bad_message(IMAGE, err.reason)
                self.stats.drop("bad_message")
                self.reporter.log_bad(cam.topic(IMAGE), err.reason, err.detail, stamp)
                return
            self._check_labels(cam, received)
            policy = self.settings.label_policy
            if cam.missing and policy != "wait":
                self._enqueue(Frame(msg, None, None, None, stamp, received, mode=policy, camera=cam.key,
                                    epoch=cam.epoch))
                return
            for matched in cam.sync.add(IMAGE, stamp, (msg, received)):
                self._enqueue(Frame.from_set(matched.items, matched.stamp_ns, cam.key, cam.epoch))
        except Exception as exc:  # never let one message kill the node
            self.stats.bad_message(IMAGE, "callback_error")
            self.stats.drop("bad_message")
            self.reporter.log_bad(cam.topic(IMAGE), "callback_error", repr(exc))

    def _on_label(self, cam: Camera, topic: str, msg: Any) -> None:
        received = time.monotonic()
        cam.first_message = cam.first_message or received
        self.stats.message_in(topic)
        cam.last_seen[topic] = received
        try:
            for matched in cam.sync.add(topic, stamp_to_ns(msg.header.stamp), (msg, received)):
                self._enqueue(Frame.from_set(matched.items, matched.stamp_ns, cam.key, cam.epoch))
        except Exception as exc:
            self.stats.bad_message(topic, "callback_error")
            self.stats.drop("bad_message", topic)
            self.reporter.log_bad(cam.topic(topic), "callback_error", repr(exc))

    def _enqueue(self, frame: Frame) -> None:
        superseded = self.slots.put(frame.camera, frame)
        if superseded is frame:  # the slots are closed: shutting down
            self.stats.drop("pending_at_shutdown")
        elif superseded is not None:
            self.stats.drop("superseded")

    # ------------------------------------------------------------------------------------------ label watch
    def _check_labels(self, cam: Camera, now: float) -> None:
        """Update the camera's silent label topics; warn (every label_timeout_s) while any is silent."""
        timeout, policy = self.settings.label_timeout_s, self.settings.label_policy
        missing = [t for t in self.label_topics if now - cam.last_seen[t] > timeout]
        if missing:
            allowed, _ = self.reporter.limiter.allow((cam.key, "labels missing"))
            if allowed or missing != cam.missing:
                names = ", ".join(cam.topic(t) for t in missing)
                self._logger.warning(f"no message on {names} for more than {timeout:g} s;"
                                     f" label_policy={policy}: {_POLICY_ACTIONS[policy]}")
        elif cam.missing:
            self._logger.info(f"label topics of {cam.topic(IMAGE)} are back: translating synchronised sets")
        cam.missing = missing

    def warnings(self) -> list[str]:
        """One line per camera whose label topics are silent (for diagnostics)."""
        return [
            f"no message on {', '.join(cam.topic(t) for t in cam.missing)} for > {self.settings.label_timeout_s:g} s"
            f" (label_policy={self.settings.label_policy})"
            for cam in self.cameras.values() if cam.missing
        ]

    def close(self) -> None:
        """Refuse further frames; count what is still pending (slots, synchronisers) as ``pending_at_shutdown``."""
        pending = self.slots.close()
        if pending:
            self.stats.drop("pending_at_shutdown", n=len(pending))

    def clear(self) -> None:
        """Drop what the synchronisers still hold as ``pending_at_shutdown`` (after the worker stopped)."""
        for cam in self.cameras.values():
            cam.sync.clear("pending_at_shutdown")
