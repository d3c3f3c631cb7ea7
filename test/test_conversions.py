"""Tests for sim2real.io.conversions: every encoding round-trips, wire quirks (padding, endianness), errors."""

from __future__ import annotations

import array
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import sensor_msgs.msg._image as image_module
import torch
from builtin_interfaces.msg import Time
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from sim2real.core.errors import ImageConversionError
from sim2real.io import conversions as conv
from sim2real.io.conversions import (
    ENCODINGS,
    array_to_compressed,
    array_to_image,
    array_to_tensor,
    compressed_to_array,
    decode_compressed,
    image_fields,
    image_to_array,
    tensor_to_array,
    to_rgb8,
)

RNG = np.random.default_rng(7)
MULTIBYTE = sorted(e for e, (dtype, _) in ENCODINGS.items() if dtype.itemsize > 1)


def random_image(encoding: str, height: int = 5, width: int = 7) -> np.ndarray:
    """A random array with the dtype and shape ``encoding`` implies (finite floats)."""
    dtype, channels = ENCODINGS[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype.kind == "f":
        return RNG.normal(0, 1e3, size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


def wire_message(
    arr: np.ndarray, encoding: str, *, pad: int = 0, big: bool = False, data_type: str = "bytes"
) -> SimpleNamespace:
    """An Image-like message built independently of the module: explicit byte order, padded rows."""
    height, width = arr.shape[:2]
    order = ">" if big else "<"
    rows = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder(order))).reshape(height, -1)
    row_bytes = rows.view(np.uint8).reshape(height, -1)
    padding = np.full((height, pad), 0xAB, dtype=np.uint8)
    payload = np.concatenate([row_bytes, padding], axis=1).tobytes()
    data: object = {
        "bytes": payload,
        "array": array.array("B", payload),
        "numpy": np.frombuffer(payload, np.uint8).copy(),
    }[data_type]
    return SimpleNamespace(
        height=height, width=width, encoding=encoding, is_bigendian=int(big),
        step=row_bytes.shape[1] + pad, data=data,
    )


def gradient_rgb(height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth RGB image with distinct channels (jpeg reproduces it closely)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // (width - 1), y * 255 // (height - 1), 255 - x * 200 // (width - 1)], axis=2
                    ).astype(np.uint8)


# --- Image <-> ndarray ------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_every_encoding_round_trips_through_a_ros_image(encoding: str) -> None:
    arr = random_image(encoding)
    msg = array_to_image(arr, encoding)
    dtype, channels = ENCODINGS[encoding]
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    assert msg.step == 7 * channels * dtype.itemsize
    assert msg.is_bigendian == int(sys.byteorder == "big")
    assert len(msg.data) == msg.step * msg.height
    out = image_to_array(msg)
    assert out.dtype == dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("data_type", ["bytes", "array", "numpy"])
@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "bgra8", "mono16", "32FC1", "16SC3", "64FC1"])
def test_padded_rows_decode_as_a_strided_view_without_copy(encoding: str, data_type: str) -> None:
    arr = random_image(encoding)
    msg = wire_message(arr, encoding, pad=5, data_type=data_type)
    out = image_to_array(msg)
    np.testing.assert_array_equal(out, arr)
    assert out.strides[0] == msg.step
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))
    assert not out.flags.writeable, "a view of the message buffer must be read-only"


@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize("encoding", MULTIBYTE)
def test_big_endian_payloads_are_swapped_to_native(encoding: str, pad: int) -> None:
    arr = random_image(encoding)
    msg = wire_message(arr, encoding, pad=pad, big=True)
    out = image_to_array(msg)
    assert out.dtype.isnative and out.dtype == ENCODINGS[encoding][0]
    np.testing.assert_array_equal(out, arr)


def test_big_endian_flag_is_ignored_for_one_byte_types() -> None:
    arr = random_image("rgb8")
    msg = wire_message(arr, "rgb8", big=True)
    np.testing.assert_array_equal(image_to_array(msg), arr)


def test_known_big_endian_bytes_decode_to_the_right_values() -> None:
    msg = SimpleNamespace(height=1, width=2, encoding="16UC1", is_bigendian=1, step=4,
                          data=b"\x01\x02\xff\x00")
    np.testing.assert_array_equal(image_to_array(msg), [[0x0102, 0xFF00]])
    msg.is_bigendian = 0
    np.testing.assert_array_equal(image_to_array(msg), [[0x0201, 0x00FF]])


def test_step_that_is_not_a_multiple_of_the_item_size_still_decodes() -> None:
    arr = random_image("32FC1", 3, 2)
    msg = wire_message(arr, "32FC1", pad=1)
    np.testing.assert_array_equal(image_to_array(msg), arr)


ENC_SUBSET = ["rgb8", "bgra8", "mono8", "mono16", "16UC3", "16SC1", "32SC1", "32FC1", "32FC3", "64FC1",
              "8SC2"]


@settings(max_examples=50, deadline=None)
@given(
    encoding=st.sampled_from(ENC_SUBSET),
    size=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    pad=st.integers(0, 9),
    big=st.booleans(),
    data=st.data(),
)
def test_property_any_wire_layout_decodes_to_the_array(
    encoding: str, size: tuple[int, int], pad: int, big: bool, data: st.DataObject
) -> None:
    height, width = size
    dtype, channels = ENCODINGS[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    elements = st.floats(-1e6, 1e6, width=8 * dtype.itemsize) if dtype.kind == "f" else None
    arr = data.draw(hnp.arrays(dtype, shape, elements=elements))
    out = image_to_array(wire_message(arr, encoding, pad=pad, big=big))
    np.testing.assert_array_equal(out, arr)
    # and back out again through the message builder, unpadded and native
    np.testing.assert_array_equal(image_to_array(array_to_image(out, encoding)), arr)


def test_non_contiguous_and_non_native_arrays_are_accepted_on_the_way_out() -> None:
    base = random_image("rgb8", 6, 10)
    strided = base[:, ::2]
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(image_to_array(array_to_image(strided, "rgb8")), strided)
    swapped = random_image("mono16").astype(">u2")
    msg = array_to_image(swapped, "mono16")
    assert msg.is_bigendian == int(sys.byteorder == "big")
    np.testing.assert_array_equal(image_to_array(msg), swapped)


def test_single_channel_accepts_trailing_axis_of_one() -> None:
    arr = random_image("mono8")
    np.testing.assert_array_equal(image_to_array(array_to_image(arr[:, :, None], "mono8")), arr)


# --- errors name the field and expected vs actual ----------------------------------------------------------


def test_unknown_encoding_lists_the_known_ones() -> None:
    msg = SimpleNamespace(height=1, width=1, encoding="rgb9", is_bigendian=0, step=3, data=b"abc")
    with pytest.raises(ImageConversionError, match=r"unknown image encoding 'rgb9'.*known encodings:.*rgb8"):
        image_to_array(msg)
    with pytest.raises(ImageConversionError, match="'rgb9'"):
        array_to_image(np.zeros((1, 1, 3), np.uint8), "rgb9")


def test_data_length_mismatch_names_both_numbers() -> None:
    msg = wire_message(random_image("rgb8", 2, 2), "rgb8")
    msg.data = msg.data[:-1]
    with pytest.raises(ImageConversionError, match=r"len\(data\)=11 .* step\*height = 6\*2 = 12"):
        image_to_array(msg)


def test_step_smaller_than_a_row_is_rejected() -> None:
    msg = wire_message(random_image("mono16", 2, 4), "mono16")
    msg.step, msg.data = 7, msg.data[:14]
    expected = r"step=7 is smaller than width\*channels\*bytes = 4\*1\*2 = 8"
    with pytest.raises(ImageConversionError, match=expected):
        image_to_array(msg)


@pytest.mark.parametrize(("height", "width"), [(0, 4), (4, 0)])
def test_zero_sized_images_are_rejected(height: int, width: int) -> None:
    msg = SimpleNamespace(height=height, width=width, encoding="mono8", is_bigendian=0, step=width, data=b"")
    with pytest.raises(ImageConversionError, match=f"height={height}, width={width}"):
        image_to_array(msg)
    with pytest.raises(ImageConversionError, match="empty"):
        array_to_image(np.zeros((height, width), np.uint8), "mono8")


def test_wrong_dtype_on_the_way_out_names_actual_and_expected() -> None:
    expected = r"dtype float64 does not match encoding 'rgb8': expected uint8"
    with pytest.raises(ImageConversionError, match=expected):
        array_to_image(np.zeros((2, 2, 3)), "rgb8")
    with pytest.raises(ImageConversionError, match=r"dtype int32 .* '16UC1': expected uint16"):
        image_fields(np.zeros((2, 2), np.int32), "16UC1")


def test_wrong_shape_on_the_way_out_names_actual_and_expected() -> None:
    with pytest.raises(ImageConversionError, match=r"shape \(2, 2, 4\) .* 'rgb8': expected \(H, W, 3\)"):
        array_to_image(np.zeros((2, 2, 4), np.uint8), "rgb8")
    with pytest.raises(ImageConversionError, match=r"shape \(2, 2, 3\) .* 'mono8': expected \(H, W\) or"):
        array_to_image(np.zeros((2, 2, 3), np.uint8), "mono8")
    with pytest.raises(ImageConversionError, match=r"expected a numpy\.ndarray .* got list"):
        array_to_image([[1, 2]], "mono8")  # type: ignore[arg-type]


def test_unusable_data_field_is_reported() -> None:
    msg = SimpleNamespace(height=1, width=1, encoding="mono8", is_bigendian=0, step=1, data=object())
    with pytest.raises(ImageConversionError, match=r"Image.data must be bytes.*got object"):
        image_to_array(msg)


def test_errors_are_value_errors_for_callers_that_catch_broadly() -> None:
    assert issubclass(ImageConversionError, ValueError)


# --- real message classes: rclpy and rosbags ---------------------------------------------------------------


def test_rclpy_image_survives_serialization_and_decodes() -> None:
    arr = random_image("rgb8", 9, 11)
    header = Header(stamp=Time(sec=12, nanosec=345), frame_id="cam")
    msg = array_to_image(arr, "rgb8", header=header)
    assert isinstance(msg, Image)
    assert msg.header == header and msg.header is not header
    received = deserialize_message(serialize_message(msg), Image)
    assert isinstance(received.data, array.array)
    np.testing.assert_array_equal(image_to_array(received), arr)


def test_padded_big_endian_rclpy_image_decodes() -> None:
    arr = random_image("mono16", 4, 3)
    wire = wire_message(arr, "mono16", pad=2, big=True)
    msg = Image(height=wire.height, width=wire.width, encoding="mono16", is_bigendian=1, step=wire.step)
    msg.data = wire.data
    np.testing.assert_array_equal(image_to_array(msg), arr)


@pytest.fixture(scope="module")
def typestore():

    return get_typestore(Stores.ROS2_KILTED)


def test_rosbags_typestore_image_round_trips(typestore) -> None:
    Img = typestore.types["sensor_msgs/msg/Image"]
    BagHeader = typestore.types["std_msgs/msg/Header"]
    BagTime = typestore.types["builtin_interfaces/msg/Time"]
    arr = random_image("32FC1", 6, 5)
    msg = Img(header=BagHeader(stamp=BagTime(sec=1, nanosec=2), frame_id="cam"),
              **image_fields(arr, "32FC1", data_type="numpy"))
    raw = typestore.serialize_cdr(msg, Img.__msgtype__)
    decoded = typestore.deserialize_cdr(raw, Img.__msgtype__)
    assert isinstance(decoded.data, np.ndarray)
    np.testing.assert_array_equal(image_to_array(decoded), arr)
    # the header of a rosbags message copies into an rclpy Image
    out = array_to_image(image_to_array(decoded), "32FC1", header=decoded.header)
    assert (out.header.stamp.sec, out.header.stamp.nanosec, out.header.frame_id) == (1, 2, "cam")


def test_rclpy_bytes_decode_through_rosbags_and_back(typestore) -> None:

    Img = typestore.types["sensor_msgs/msg/Image"]
    arr = random_image("bgra8", 3, 8)
    from_rclpy = typestore.deserialize_cdr(serialize_message(array_to_image(arr, "bgra8")), Img.__msgtype__)
    np.testing.assert_array_equal(image_to_array(from_rclpy), arr)
    back = deserialize_message(bytes(typestore.serialize_cdr(from_rclpy, Img.__msgtype__)), Image)
    np.testing.assert_array_equal(image_to_array(back), arr)


def test_image_fields_data_types() -> None:
    arr = random_image("16UC1", 2, 3)
    expected = arr.astype("=u2").tobytes()
    assert image_fields(arr, "16UC1")["data"] == expected
    as_array = image_fields(arr, "16UC1", data_type="array")["data"]
    assert isinstance(as_array, array.array) and as_array.typecode == "B" and as_array.tobytes() == expected
    as_numpy = image_fields(arr, "16UC1", data_type="numpy")["data"]
    assert as_numpy.dtype == np.uint8 and as_numpy.tobytes() == expected
    with pytest.raises(ImageConversionError, match=r"data_type must be one of .* got 'list'"):
        image_fields(arr, "16UC1", data_type="list")  # type: ignore[arg-type]


def test_array_to_image_assigns_an_array_array_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """msg.data must receive array.array('B'): bytes are re-checked per element when ROS checks fields."""

    monkeypatch.setattr(image_module, "ros_python_check_fields", "1")  # the strictest setter
    original = Image.data
    assigned: list[object] = []

    def spy(self, value):
        assigned.append(value)
        original.fset(self, value)

    monkeypatch.setattr(Image, "data", property(original.fget, spy))
    frame = random_image("rgb8", 720, 1280)
    msg = array_to_image(frame, "rgb8")
    assert assigned, "array_to_image must assign msg.data"
    assert all(type(v) is array.array and v.typecode == "B" for v in assigned), [type(v) for v in assigned]
    assert msg.data is assigned[-1], "the setter must keep our array.array as is (no per-element copy)"
    assert msg.data.tobytes() == frame.tobytes()


def test_module_import_stays_light() -> None:
    code = ("import sys, sim2real.io.conversions; "
            "print(sorted(m for m in ('rclpy', 'torch', 'cv2', 'sensor_msgs.msg') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


# --- to_rgb8 -----------------------------------------------------------------------------------------------

RGB = np.array([[[10, 20, 30], [200, 100, 0]]], dtype=np.uint8)  # (1, 2, 3)


@pytest.mark.parametrize(
    ("encoding", "arr"),
    [
        ("rgb8", RGB),
        ("bgr8", RGB[:, :, ::-1]),
        ("8UC3", RGB[:, :, ::-1]),
        ("rgba8", np.concatenate([RGB, np.full((1, 2, 1), 7, np.uint8)], axis=2)),
        ("bgra8", np.concatenate([RGB[:, :, ::-1], np.full((1, 2, 1), 7, np.uint8)], axis=2)),
        ("8UC4", np.concatenate([RGB[:, :, ::-1], np.zeros((1, 2, 1), np.uint8)], axis=2)),
        ("rgb16", RGB.astype(np.uint16) * 257),
        ("bgr16", RGB[:, :, ::-1].astype(np.uint16) * 257),
    ],
)
def test_to_rgb8_from_colour_encodings(encoding: str, arr: np.ndarray) -> None:
    for source in (array_to_image(arr, encoding), wire_message(arr, encoding, pad=2, big=True)):
        out = to_rgb8(source)
        assert out.dtype == np.uint8 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, RGB)
    np.testing.assert_array_equal(to_rgb8(arr, encoding), RGB)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_to_rgb8_replicates_mono(encoding: str) -> None:
    gray = np.array([[0, 128, 255]], np.uint8)
    np.testing.assert_array_equal(to_rgb8(gray, encoding), np.repeat(gray[:, :, None], 3, axis=2))


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_to_rgb8_scales_16_bit(encoding: str) -> None:
    values = np.array([[0, 128, 129, 257 * 100, 65535]], np.uint16)
    expected = np.array([[0, 0, 1, 100, 255]], np.uint8)  # round(v * 255 / 65535)
    out = to_rgb8(array_to_image(values, encoding))
    assert out.shape == (1, 5, 3)
    np.testing.assert_array_equal(out[:, :, 0], expected)
    np.testing.assert_array_equal(out[:, :, 1], out[:, :, 2])


def test_to_rgb8_errors() -> None:
    with pytest.raises(ImageConversionError, match="needs the encoding of an ndarray"):
        to_rgb8(RGB)
    with pytest.raises(ImageConversionError, match=r"cannot convert encoding '32FC1'; supported.*mono16"):
        to_rgb8(np.zeros((2, 2), np.float32), "32FC1")
    with pytest.raises(ImageConversionError, match="told encoding 'bgr8' but the Image says 'rgb8'"):
        to_rgb8(array_to_image(RGB, "rgb8"), "bgr8")


# --- CompressedImage ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_jpeg_colour_round_trip_is_close_and_keeps_channel_order(encoding: str) -> None:
    rgb = gradient_rgb()
    layout_arr = {"rgb8": rgb, "bgr8": rgb[:, :, ::-1]}.get(encoding)
    if layout_arr is None:
        alpha = np.full((*rgb.shape[:2], 1), 9, np.uint8)
        layout_arr = np.concatenate([rgb if encoding == "rgba8" else rgb[:, :, ::-1], alpha], axis=2)
    msg = array_to_compressed(layout_arr, encoding, "jpeg", quality=95)
    assert isinstance(msg, CompressedImage) and isinstance(msg.data, array.array)
    assert msg.format == f"{encoding}; jpeg compressed bgr8"
    out, out_encoding = decode_compressed(msg)
    assert out_encoding == encoding and out.shape == layout_arr.shape
    error = np.abs(out[:, :, :3].astype(int) - layout_arr[:, :, :3]).mean()
    assert error < 2.0, f"jpeg mean abs error {error:.2f}"
    if encoding.endswith("a8"):
        assert (out[:, :, 3] == 255).all(), "alpha is lost by the codec and restored opaque"
    assert np.abs(to_rgb8(msg).astype(int) - rgb).mean() < 2.0


def test_jpeg_mono_round_trip() -> None:
    gray = gradient_rgb()[:, :, 0]
    msg = array_to_compressed(gray, "mono8", "jpeg")
    assert msg.format == "mono8; jpeg compressed mono8"
    out = compressed_to_array(msg)
    assert out.shape == gray.shape and np.abs(out.astype(int) - gray).mean() < 2.0


@pytest.mark.parametrize(
    "encoding", ["rgb8", "bgr8", "mono8", "8UC1", "8UC3", "mono16", "16UC1", "rgb16", "bgr16", "16UC3"]
)
def test_png_round_trip_is_exact(encoding: str) -> None:
    arr = random_image(encoding, 12, 17)
    msg = array_to_compressed(arr, encoding, "png")
    target = {"rgb8": "bgr8", "bgr8": "bgr8", "rgb16": "bgr16", "bgr16": "bgr16"}.get(encoding, "")
    assert msg.format == f"{encoding}; png compressed {target}"
    out, out_encoding = decode_compressed(msg)
    assert out_encoding == encoding and out.dtype == arr.dtype
    np.testing.assert_array_equal(out, arr)


def test_png_drops_alpha_like_image_transport() -> None:
    arr = random_image("rgba8", 4, 4)
    out = compressed_to_array(array_to_compressed(arr, "rgba8", "png"))
    np.testing.assert_array_equal(out[:, :, :3], arr[:, :, :3])
    assert (out[:, :, 3] == 255).all()


@settings(max_examples=30, deadline=None)
@given(
    arr=hnp.arrays(
        st.sampled_from([np.uint8, np.uint16]),
        st.tuples(st.integers(1, 9), st.integers(1, 9), st.sampled_from([1, 3])),
    )
)
def test_property_png_is_lossless(arr: np.ndarray) -> None:
    bits = 8 * arr.itemsize
    encoding = f"mono{bits}" if arr.shape[2] == 1 else f"rgb{bits}"
    arr = arr[:, :, 0] if arr.shape[2] == 1 else arr
    np.testing.assert_array_equal(compressed_to_array(array_to_compressed(arr, encoding, "png")), arr)


def test_payload_in_rgb_order_is_honoured() -> None:
    """A publisher that says "compressed rgb8" stored RGB bytes where OpenCV expects BGR."""
    rgb = random_image("rgb8", 3, 4)
    _, png = cv2.imencode(".png", rgb)  # bytes in the file are swapped w.r.t. OpenCV's convention
    msg = SimpleNamespace(format="bgr8; png compressed rgb8", data=png.tobytes())
    np.testing.assert_array_equal(compressed_to_array(msg), rgb[:, :, ::-1])


@pytest.mark.parametrize("codec", ["jpeg", "png"])
def test_bare_codec_format_gives_opencv_bgr(codec: str) -> None:
    """cv_bridge's cv2_to_compressed_imgmsg writes format "jpeg"/"png": no encoding, so BGR as decoded."""
    bgr = gradient_rgb()[:, :, ::-1]
    _, encoded = cv2.imencode(f".{codec}", np.ascontiguousarray(bgr))
    msg = SimpleNamespace(format=codec, data=array.array("B", encoded.tobytes()))
    out, encoding = decode_compressed(msg)
    assert encoding == "bgr8"
    assert np.abs(out.astype(int) - bgr).mean() < 2.0
    assert np.abs(to_rgb8(msg).astype(int) - bgr[:, :, ::-1]).mean() < 2.0


def test_rosbags_compressed_image_decodes(typestore) -> None:
    CImg = typestore.types["sensor_msgs/msg/CompressedImage"]
    BagHeader = typestore.types["std_msgs/msg/Header"]
    BagTime = typestore.types["builtin_interfaces/msg/Time"]
    arr = random_image("16UC1", 5, 6)
    rclpy_msg = array_to_compressed(arr, "16UC1", "png")
    msg = CImg(header=BagHeader(stamp=BagTime(sec=0, nanosec=0), frame_id=""),
               format=rclpy_msg.format, data=np.frombuffer(rclpy_msg.data, np.uint8))
    decoded = typestore.deserialize_cdr(typestore.serialize_cdr(msg, CImg.__msgtype__), CImg.__msgtype__)
    np.testing.assert_array_equal(compressed_to_array(decoded), arr)


def test_compressed_header_is_copied() -> None:

    header = Header(stamp=Time(sec=3, nanosec=4), frame_id="cam")
    msg = array_to_compressed(gradient_rgb(), "rgb8", header=header)
    assert msg.header == header and msg.header is not header


@pytest.mark.parametrize(
    ("data", "fmt", "pattern"),
    [
        (b"\xff\xd8 not a jpeg", "rgb8; jpeg compressed bgr8", r"\(13 bytes, format 'rgb8; jpeg .* corrupt"),
        (b"", "png", "CompressedImage.data is empty"),
        (b"\x00" * 12, "16UC1; compressedDepth png", "compressedDepth, which is not supported"),
    ],
)
def test_bad_compressed_payloads_raise(data: bytes, fmt: str, pattern: str) -> None:
    with pytest.raises(ImageConversionError, match=pattern):
        compressed_to_array(SimpleNamespace(format=fmt, data=data))


def test_truncated_jpeg_raises() -> None:
    msg = array_to_compressed(gradient_rgb(), "rgb8")
    msg.data = msg.data[:40]
    with pytest.raises(ImageConversionError, match=r"\(40 bytes"):
        compressed_to_array(msg)


def test_array_to_compressed_rejects_what_the_codec_cannot_hold() -> None:
    with pytest.raises(ImageConversionError, match=r"jpeg needs 8-bit .* '16UC1' has dtype uint16"):
        array_to_compressed(np.zeros((2, 2), np.uint16), "16UC1", "jpeg")
    with pytest.raises(ImageConversionError, match=r"png needs 8 or 16-bit .* '32FC1' has dtype float32"):
        array_to_compressed(np.zeros((2, 2), np.float32), "32FC1", "png")
    with pytest.raises(ImageConversionError, match=r"quality must be in 1\.\.100, got 0"):
        array_to_compressed(gradient_rgb(), "rgb8", quality=0)
    with pytest.raises(ImageConversionError, match="fmt must be 'jpeg' or 'png', got 'webp'"):
        array_to_compressed(gradient_rgb(), "rgb8", "webp")  # type: ignore[arg-type]


# --- torch -------------------------------------------------------------------------------------------------


def test_array_to_tensor_layout_and_range() -> None:
    arr = np.array([[[0, 128, 255]]], np.uint8)  # (1, 1, 3)
    t = array_to_tensor(arr)
    assert t.shape == (3, 1, 1) and t.dtype == torch.float32
    torch.testing.assert_close(t.flatten(), torch.tensor([0.0, 128 / 255, 1.0]))
    assert array_to_tensor(np.zeros((4, 5), np.uint8)).shape == (1, 4, 5)


def test_array_to_tensor_accepts_read_only_views_without_warning() -> None:
    view = image_to_array(wire_message(random_image("rgb8"), "rgb8", pad=3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = array_to_tensor(view)
    t += 1  # owns its memory
    assert not view.flags.writeable


@settings(max_examples=40, deadline=None)
@given(arr=hnp.arrays(np.uint8, st.tuples(st.integers(1, 8), st.integers(1, 8), st.sampled_from([1, 3, 4]))))
def test_property_tensor_round_trip_is_exact(arr: np.ndarray) -> None:
    out = tensor_to_array(array_to_tensor(arr))
    expected = arr[:, :, 0] if arr.shape[2] == 1 else arr
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)


def test_tensor_to_array_clamps_rounds_and_drops_batch_of_one() -> None:
    t = torch.tensor([[[-0.5, 0.5 / 255, 1.6 / 255, 2.0, float("nan")]]])  # (1, 1, 5)
    np.testing.assert_array_equal(tensor_to_array(t), [[0, 0, 2, 255, 0]])
    assert t[0, 0, 0] == -0.5, "the input tensor is not modified"
    batch = torch.rand(1, 3, 2, 4, requires_grad=True)
    assert tensor_to_array(batch).shape == (2, 4, 3)
    assert tensor_to_array(torch.zeros(2, 4, dtype=torch.float64)).shape == (2, 4)


def test_torch_errors() -> None:
    with pytest.raises(ImageConversionError, match="expects a uint8 ndarray, got uint16"):
        array_to_tensor(np.zeros((2, 2), np.uint16))
    with pytest.raises(ImageConversionError, match=r"shape \(H, W\) or \(H, W, C\), got \(1, 2, 2, 3\)"):
        array_to_tensor(np.zeros((1, 2, 2, 3), np.uint8))
    with pytest.raises(ImageConversionError, match=r"floating-point torch\.Tensor, got torch\.uint8"):
        tensor_to_array(torch.zeros(3, 2, 2, dtype=torch.uint8))
    with pytest.raises(ImageConversionError, match=r"batch of shape \(2, 3, 2, 2\)"):
        tensor_to_array(torch.zeros(2, 3, 2, 2))


# --- agreement with the real ROS cv_bridge (full ROS installs only) ----------------------------------------


def _ros_cv_bridge():
    """The ROS 2 cv_bridge (not PyPI's look-alike `cv-bridge`), or skip."""
    try:
        cv_bridge = pytest.importorskip("cv_bridge", reason="ROS cv_bridge absent (no full ROS install)")
    except Exception as exc:  # PyPI's look-alike `cv-bridge` can fail at import time on numpy 2
        pytest.skip(f"cv_bridge is importable but broken ({exc!r}): not the ROS one")
    location = str(Path(getattr(cv_bridge, "__file__", "") or ""))
    if not hasattr(cv_bridge, "CvBridge") or not location.startswith("/opt/ros"):
        pytest.skip(f"cv_bridge at {location!r} is not the ROS one (expected under /opt/ros)")
    return cv_bridge.CvBridge()


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8", "mono16", "16UC1", "32FC1", "8UC3", "16SC1"])
def test_agrees_with_ros_cv_bridge(encoding: str) -> None:
    bridge = _ros_cv_bridge()
    arr = random_image(encoding, 6, 9)
    theirs = bridge.cv2_to_imgmsg(arr, encoding=encoding)
    np.testing.assert_array_equal(image_to_array(theirs), arr)
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(array_to_image(arr, encoding)), arr)
    if encoding in ("rgb8", "bgr8", "mono8"):
        np.testing.assert_array_equal(to_rgb8(theirs), bridge.imgmsg_to_cv2(theirs, desired_encoding="rgb8"))
    if arr.dtype in (np.uint8, np.uint16):  # what png can hold; cv_bridge writes the bare format "png"
        png = bridge.cv2_to_compressed_imgmsg(arr, dst_format="png")
        np.testing.assert_array_equal(compressed_to_array(png), bridge.compressed_imgmsg_to_cv2(png))
        desired = encoding if encoding in ("rgb8", "bgr8") else "passthrough"  # ours stores colour as BGR
        ours = array_to_compressed(arr, encoding, "png")
        np.testing.assert_array_equal(bridge.compressed_imgmsg_to_cv2(ours, desired_encoding=desired), arr)


def test_public_names() -> None:
    assert set(conv.__all__) >= {
        "image_to_array", "array_to_image", "image_fields", "to_rgb8", "compressed_to_array",
        "array_to_compressed", "array_to_tensor", "tensor_to_array",
    }
    assert all(hasattr(conv, name) for name in conv.__all__)
