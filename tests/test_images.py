"""The image contract (mmcourse.data.images, notebook 10): every image kind gives the same pixels,
and the same answer, on every path (OpenCV reader, in-graph decoder, .keras, SavedModel in a
process without mmcourse, TFLite), or a clear refusal. References: OpenCV's INTER_AREA,
Pillow's EXIF transpose, hand-computed pixels."""

import io
import json
import os
import struct
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from mmcourse.apps import deploy, predictors, raw_model
from mmcourse.data import images
from mmcourse.data.folders import DataError, decode_image
from mmcourse.matcher import model as models

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
#: the untrained model's optimizer was never built: Keras says so on loading
pytestmark = pytest.mark.filterwarnings("ignore:Skipping variable loading")
TEXT = "这是一个七"


def _encode(array, fmt, mode=None, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, fmt, **options)
    return buffer.getvalue()


def _seven(height=48, width=40) -> np.ndarray:
    """Ink (255 = full) of a hand-drawn 7, anti-aliased, not square."""
    ink = np.zeros((height, width), np.uint8)
    cv2.line(ink, (6, 8), (33, 8), 255, 4, cv2.LINE_AA)
    cv2.line(ink, (33, 8), (14, 42), 255, 4, cv2.LINE_AA)
    return ink


def _kinds() -> dict:
    """The image kinds of the issue's table: encoded bytes, all showing the same dark 7."""
    ink = _seven()
    grey = 255 - ink
    rgb = np.dstack([grey] * 3)
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0112] = 6  # "turn clockwise to view": the pixels are stored turned anticlockwise
    sideways = np.ascontiguousarray(np.rot90(rgb, 1))
    rgba = np.dstack([np.zeros_like(rgb), ink])  # black everywhere, the 7 drawn in alpha
    return {
        "png": _encode(rgb, "PNG"),
        "jpeg_exif_6": _encode(sideways, "JPEG", quality=95, exif=exif.tobytes()),
        "rgba_ink_in_alpha": _encode(rgba, "PNG"),
        "grey_png": _encode(grey, "PNG"),
        "grey16_png": cv2.imencode(".png", grey.astype(np.uint16) * 257)[1].tobytes(),
        "grey_jpeg": _encode(grey, "JPEG", quality=95),
        "tiff": _encode(rgb, "TIFF"),
        "gif": _encode(grey, "GIF"),
        "cmyk_jpeg": _encode(np.dstack([np.zeros_like(ink)] * 3 + [ink]), "JPEG",
                             mode="CMYK", quality=95),
    }


KINDS = _kinds()
#: Kinds with exactly the PNG's pixels (the JPEGs differ by compression).
SAME_PIXELS = ("png", "rgba_ink_in_alpha", "grey_png", "grey16_png", "tiff", "gif")
REFUSED = {"tiff": "TIFF", "gif": "GIF", "cmyk_jpeg": "CMYK"}


def _tf_decode(data, size=64):
    import tensorflow as tf

    return images.tf_decode_image(tf.constant(data), size).numpy()


# --- the two decoders -------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(128, 128), (192, 64), (200, 130), (640, 480), (99, 77)])
def test_area_resize_is_opencv_inter_area_when_shrinking(shape):
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    ours = images.area_resize(image, 64)
    opencv = cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA)
    integer_factor = shape[0] % 64 == 0 and shape[1] % 64 == 0
    assert np.abs(ours.astype(int) - opencv).max() <= (0 if integer_factor else 1)
    assert np.array_equal(_tf_resize(image), ours)


def _tf_resize(image, size=64):
    import tensorflow as tf

    return images.tf_area_resize(tf.constant(image), size).numpy()


def test_area_resize_by_hand():
    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 0] = 255
    image[1, 2] = 1
    small = images.area_resize(image, 1)  # the mean of six pixels, 256 / 6 = 42.67
    assert small.tolist() == [[[43, 43, 43]]]
    assert images.area_resize(np.full((4, 4, 3), 7, np.uint8), 2).tolist() == [[[7] * 3] * 2] * 2
    # two pixels 1 and 2 into one: 1.5 rounds half up, as OpenCV's INTER_AREA does
    assert images.area_resize(np.array([[[1] * 3, [2] * 3]], np.uint8), 1)[0, 0, 0] == 2
    assert np.array_equal(_tf_resize(np.array([[[1] * 3, [2] * 3]], np.uint8), 1)[0, 0],
                          [2, 2, 2])
    assert images.area_weights(3, 2).tolist() == [[2, 1, 0], [0, 1, 2]]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_turns_jpegs_upright_like_pillow(orientation):
    pixels = np.random.default_rng(orientation).integers(0, 256, (24, 16, 3), dtype=np.uint8)
    pixels = cv2.GaussianBlur(pixels, (5, 5), 2)
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0112] = orientation
    data = _encode(pixels, "JPEG", quality=95, exif=exif.tobytes())
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert images.jpeg_header(data) == {"orientation": orientation, "components": 3,
                                        "width": 16, "height": 24}
    course = decode_image(data)
    assert course.shape == upright.shape
    assert np.array_equal(course, upright)
    assert np.array_equal(_tf_decode(data), images.area_resize(course, 64))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_tensorflow_decodes_every_served_kind_to_the_course_pixels(kind):
    data = KINDS[kind]
    if kind in REFUSED:
        with pytest.raises(images.ImageError, match=REFUSED[kind] + ".*convert it to"):
            images.check_served(data, kind)
        import tensorflow as tf

        with pytest.raises(tf.errors.InvalidArgumentError):
            _tf_decode(data)
        return
    assert images.served_problem(data) is None
    assert np.array_equal(_tf_decode(data), decode_image(data, kind, 64))


@pytest.mark.parametrize("kind", SAME_PIXELS)
def test_every_lossless_kind_shows_the_pngs_pixels(kind):
    expected = np.dstack([255 - _seven()] * 3)  # by hand: dark ink on white
    assert np.array_equal(decode_image(KINDS[kind], kind), expected)


def test_the_sideways_jpeg_is_read_upright():
    upright = decode_image(KINDS["jpeg_exif_6"])
    assert upright.shape == (48, 40, 3)
    assert np.abs(upright.astype(int) - (255 - _seven()[..., None])).mean() < 2


def test_sixteen_bits_round_to_the_nearest_level():
    levels = np.array([[0, 128, 129, 385, 65535, 32896]], np.uint16)  # 128/257 = 0.498
    data = cv2.imencode(".png", levels)[1].tobytes()
    assert decode_image(data)[..., 0].tolist() == [[0, 0, 1, 1, 255, 128]]
    assert np.array_equal(_tf_decode(data, 1), images.area_resize(decode_image(data), 1))


def test_with_orientation_writes_the_tag_that_pillow_reads():
    rgb = np.dstack([255 - _seven()] * 3)
    plain = cv2.imencode(".jpg", rgb)[1].tobytes()
    tagged = images.with_orientation(plain, 6)
    assert Image.open(io.BytesIO(tagged)).getexif()[0x0112] == 6
    assert images.jpeg_header(tagged)["orientation"] == 6
    assert np.array_equal(decode_image(tagged), np.rot90(decode_image(plain), -1))
    assert np.array_equal(_tf_decode(tagged), decode_image(tagged, size=64))
    with pytest.raises(ValueError, match="orientation must be 1 to 8, got 9"):
        images.with_orientation(plain, 9)


def test_served_problem_names_the_format():
    assert "TIFF" in images.served_problem(KINDS["tiff"])
    assert "not a PNG or JPEG" in images.served_problem(b"hello")
    assert images.image_format(KINDS["gif"]) == "gif"
    assert images.image_format(_encode(np.zeros((2, 2, 3), np.uint8), "WEBP")) == "webp"
    assert images.jpeg_header(KINDS["cmyk_jpeg"])["components"] == 4
    assert images.jpeg_header(KINDS["grey_jpeg"])["components"] == 1


def test_truncated_files_are_refused_by_both_decoders():
    import tensorflow as tf

    for kind in ("png", "grey_jpeg"):
        cut = KINDS[kind][:len(KINDS[kind]) // 2]
        with pytest.raises(DataError, match="cannot decode|corrupt"):
            decode_image(cut, kind)
        with pytest.raises(tf.errors.InvalidArgumentError):
            _tf_decode(cut)


# --- the table: every kind on every path ---------------------------------------------


@pytest.fixture(scope="module")
def table_model(tmp_path_factory):
    """One untrained matcher (seeded), saved as .keras, exported with its TFLite files."""
    import keras

    root = tmp_path_factory.mktemp("contract")
    keras.utils.set_random_seed(0)
    vocabulary = ["", "[UNK]", "这", "是", "一", "个", "七"]
    core = models.build_model("match", vocabulary_size=len(vocabulary), sequence_length=8)
    raw_model.export_model(core, vocabulary, 8).save(root / "m.keras")
    deploy.export(root / "m.keras", root / "saved", tflite=True)
    folder = root / "kinds"
    folder.mkdir()
    for kind, data in KINDS.items():
        (folder / kind).write_bytes(data)
    return {"keras": root / "m.keras", "saved": root / "saved",
            "tflite": root / "saved" / deploy.TFLITE_FILES["float32"], "folder": folder}


SERVER = r"""
import importlib.util, json, os, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
sys.path[:] = [p for p in sys.path if p and not os.path.isdir(os.path.join(p, "mmcourse"))]
assert importlib.util.find_spec("mmcourse") is None, "mmcourse is importable"
sys.modules["cv2"] = None
import tensorflow as tf
request = json.loads(sys.stdin.read())
signature = tf.saved_model.load(request["model"]).signatures["serving_default"]
answers = {}
for path in request["images"]:
    try:
        output = signature(image=tf.constant([open(path, "rb").read()]),
                           text=tf.constant([request["text"]]))
        answers[os.path.basename(path)] = float(output["probability"].numpy()[0])
    except tf.errors.InvalidArgumentError as error:
        answers[os.path.basename(path)] = "refused: " + error.message
print(json.dumps(answers))
"""


def _served(table_model):
    request = {"model": str(table_model["saved"]), "text": TEXT,
               "images": [str(table_model["folder"] / kind) for kind in KINDS]}
    completed = subprocess.run([sys.executable, "-I", "-c", SERVER], input=json.dumps(request),
                               capture_output=True, text=True, env=ENV, timeout=300,
                               cwd=table_model["folder"])
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_every_kind_gives_the_same_answer_on_every_path_or_a_clear_refusal(table_model):
    paths = [table_model["folder"] / kind for kind in KINDS]
    course = dict(zip(KINDS, predictors.predict(table_model["keras"], paths, [TEXT] * len(paths)),
                      strict=True))
    tflite = dict(zip(KINDS, predictors.predict(table_model["tflite"], paths, [TEXT] * len(paths)),
                      strict=True))
    served = _served(table_model)
    for kind in KINDS:
        assert tflite[kind] == pytest.approx(course[kind], abs=1e-5), kind
        if kind in REFUSED:
            assert served[kind].startswith("refused: "), (kind, served[kind])
            assert "image contract" in served[kind] and "convert it to" in served[kind]
        else:
            assert served[kind] == pytest.approx(course[kind], abs=1e-6), (kind, served[kind])
    for kind in SAME_PIXELS:  # the same pixels, so the same answer as the PNG
        assert course[kind] == pytest.approx(course["png"], abs=1e-6), kind
    # the model sees the difference: the 7 on its side or a black square would score otherwise
    sideways = np.ascontiguousarray(np.rot90(decode_image(KINDS["png"]), 1))
    black = np.zeros((48, 40, 3), np.uint8)
    others = predictors.predict(table_model["keras"], [sideways, black], [TEXT] * 2)
    assert np.abs(others - course["png"]).min() > 1e-4, (others, course["png"])
    assert course["jpeg_exif_6"] == pytest.approx(course["png"], abs=0.02)


def test_the_predictor_names_the_refused_file(table_model):
    with pytest.raises(ValueError, match=r"tiff\): it is a TIFF file.*convert it to PNG"):
        predictors.predict(table_model["saved"], [table_model["folder"] / "tiff"], [TEXT])
    with pytest.raises(ValueError, match="exported model refused an image"):  # in-graph
        predictors.predict(table_model["saved"], [KINDS["png"][:200]], [TEXT])


# --- headers written byte by byte (issue 28, section 7) -----------------------------------------
# Reference: the JPEG standard's marker layout (ITU T.81 B.1), the TIFF 6.0 layout of the EXIF
# block, the BMP header, and Pillow reading the same bytes.


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _frame(marker: int, height: int, width: int, components: int) -> bytes:
    return _segment(marker, struct.pack(">BHHB", 8, height, width, components)
                    + b"\x01\x11\x00" * components)


def _exif_jpeg(jpeg: bytes, orientation: int, order: str = "MM", offset: int = 8) -> bytes:
    """``jpeg`` with an EXIF block made by hand: byte order ``II`` (little-endian) or ``MM``,
    its first directory ``offset`` bytes into the TIFF header, holding the orientation."""
    e = ">" if order == "MM" else "<"
    tiff = (order.encode() + struct.pack(e + "HI", 42, offset) + b"\x00" * (offset - 8)
            + struct.pack(e + "HHHIHH", 1, 0x0112, 3, 1, orientation, 0) + struct.pack(e + "I", 0))
    return jpeg[:2] + _segment(0xE1, b"Exif\x00\x00" + tiff) + jpeg[2:]


def _tf_header(data):
    import tensorflow as tf

    return [int(v) for v in images._tf_jpeg_header(tf.constant(data))]


def test_marker_walk_skips_fill_bytes_standalone_markers_and_non_frame_segments():
    # SOI, a TEM (standalone FF01), a fill byte, DHT (C4), DAC (CC) and JPG (C8), which are
    # not frames, then a lossless arithmetic frame (CF) of 0x456 x 0x123, 3 components
    data = (b"\xff\xd8" + b"\xff\x01" + b"\xff" + _segment(0xC4, b"\x00" * 5)
            + _segment(0xCC, b"\x09\x08\x07\x06") + _segment(0xC8, b"\x05\x04\x03\x02\x01")
            + _frame(0xCF, 0x0456, 0x0123, 3) + _segment(0xDA, b"\x00" * 8) + b"\xff\xd9")
    assert images.jpeg_header(data) == {"orientation": 1, "components": 3, "width": 0x0123,
                                        "height": 0x0456}
    assert _tf_header(data) == [1, 3, 0x0123, 0x0456]
    assert images.image_dimensions(data) == (0x0123, 0x0456)
    # no frame before the end: no components, no size; nothing to measure
    bare = b"\xff\xd8" + _segment(0xE0, b"JFIF\x00") + b"\xff\xd9\x00\x00"
    assert images.jpeg_header(bare) == {"orientation": 1, "components": 0, "width": 0,
                                        "height": 0}
    assert _tf_header(bare) == [1, 0, 0, 0]
    assert images.image_dimensions(bare) is None
    # a CMYK frame (4 components), the first SOF kind (C0) and a grey one (C2, progressive)
    assert _tf_header(b"\xff\xd8" + _frame(0xC0, 7, 9, 4) + b"\xff\xd9") == [1, 4, 9, 7]
    assert images.jpeg_header(b"\xff\xd8" + _frame(0xC2, 300, 2, 1))["components"] == 1


@pytest.mark.parametrize(("order", "offset"), [("II", 8), ("MM", 8), ("II", 300), ("MM", 300)])
def test_exif_in_both_byte_orders_and_far_directories_turn_the_jpeg_like_pillow(order, offset):
    pixels = cv2.GaussianBlur(np.random.default_rng(9).integers(0, 256, (24, 16, 3),
                                                                dtype=np.uint8), (5, 5), 2)
    plain = _encode(pixels, "JPEG", quality=95)
    for orientation in (3, 6):
        data = _exif_jpeg(plain, orientation, order, offset)
        assert Image.open(io.BytesIO(data)).getexif()[0x0112] == orientation  # valid EXIF
        upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
        assert images.jpeg_header(data)["orientation"] == orientation
        assert _tf_header(data)[0] == orientation
        course = decode_image(data)
        assert np.array_equal(course, upright)
        assert np.array_equal(_tf_decode(data), images.area_resize(course, 64))


@pytest.mark.parametrize("orientation", [0, 9, 300])
def test_an_orientation_outside_1_to_8_leaves_the_jpeg_as_stored(orientation):
    pixels = cv2.GaussianBlur(np.random.default_rng(2).integers(0, 256, (24, 16, 3),
                                                                dtype=np.uint8), (5, 5), 2)
    plain = _encode(pixels, "JPEG", quality=95)
    data = _exif_jpeg(plain, orientation)
    assert images.jpeg_header(data)["orientation"] == orientation
    stored = decode_image(plain)
    assert np.array_equal(decode_image(data), stored)  # as OpenCV reads it: not turned
    assert np.array_equal(_tf_decode(data, 16), images.area_resize(stored, 16))


def test_bmp_and_gif_dimensions_from_their_headers():
    image = np.zeros((48, 40, 3), np.uint8)
    bmp = bytearray(cv2.imencode(".bmp", image)[1].tobytes())
    assert images.image_dimensions(bytes(bmp)) == (40, 48)
    bmp[22:26] = struct.pack("<i", -48)  # a top-down BMP stores a negative height
    assert images.image_dimensions(bytes(bmp)) == (40, 48)
    assert images.image_dimensions(_encode(image[..., 0], "GIF")) == (40, 48)
    assert images.image_dimensions(KINDS["grey_jpeg"]) == (40, 48)
    assert images.image_dimensions(b"hello, world, not an image at all") is None


def test_to_rgb_of_float_and_grey_alpha_arrays_by_hand():
    floats = np.array([[0.0, 0.5, 1.0, 1.2, -0.1]], np.float32)  # 0.5 * 255 = 127.5 -> 128
    assert images.to_rgb(floats)[..., 0].tolist() == [[0, 128, 255, 255, 0]]
    grey_alpha = np.array([[[100, 255], [100, 0], [0, 128], [200, 51]]], np.uint8)
    # over white: (c a + 255 (255 - a)) / 255: 100; 255; 127 / 255 * 255 = 127.0 -> 127;
    # (200 * 51 + 255 * 204) / 255 = 244
    assert images.to_rgb(grey_alpha).tolist() == [[[100] * 3, [255] * 3, [127] * 3, [244] * 3]]


def test_both_decoders_refuse_an_image_over_the_pixel_limit_from_its_header():
    import tensorflow as tf

    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 8000, 5001, 8, 2, 0, 0, 0)  # 40,008,000 pixels
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", 0) + b"\0" * 8
    jpeg = b"\xff\xd8" + _frame(0xC0, 5001, 8000, 3) + _segment(0xDA, b"\0" * 8) + b"\xff\xd9"
    for data in (png, jpeg):
        assert images.image_dimensions(data) == (8000, 5001)
        with pytest.raises(images.ImageError, match="8000x5001 = 40 megapixels, over the limit"):
            images.decode_image(data, "big")
        with pytest.raises(tf.errors.InvalidArgumentError, match="over 40 megapixels"):
            _tf_decode(data)
    # one row fewer is within the limit: the decoder, not the limit, refuses these bytes
    small = png.replace(struct.pack(">II", 8000, 5001), struct.pack(">II", 8000, 5000))
    with pytest.raises(images.ImageError, match="cannot decode"):
        images.decode_image(small, "small")


def test_grey_with_alpha_png_is_composited_over_white_on_both_paths():
    ink = _seven()
    grey = np.full_like(ink, 40)  # dark grey everywhere, the 7 drawn in the alpha channel
    data = _encode(np.dstack([grey, ink]), "PNG", mode="LA")
    # by hand: (40 a + 255 (255 - a)) / 255, rounded half up
    expected = (40 * ink.astype(int) + 255 * (255 - ink.astype(int)) + 127) // 255
    course = decode_image(data)
    assert np.array_equal(course, np.dstack([expected] * 3))
    assert np.array_equal(_tf_decode(data), images.area_resize(course, 64))
