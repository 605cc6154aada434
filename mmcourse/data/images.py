"""The image contract: how every path of the course turns an image file into the RGB uint8
pixels a model sees (used from notebook 01 on; shown in notebook 10).

``check-data``, ``train``, ``predict`` with a ``.keras`` or ``.tflite`` model read files
with ``decode_image`` (OpenCV); the exported SavedModel's signature reads them with
``tf_decode_image`` (TensorFlow ops only). Both follow the same rules, and give the same
pixels for every file the signature accepts (``tests/test_images.py`` compares them):

* **formats**: the course reads what OpenCV reads (PNG, JPEG, BMP, GIF, WebP, TIFF); the
  exported signature reads PNG and JPEG (``SERVED_FORMATS``) and refuses the others with
  an error that says "convert it to PNG", never a different answer. A CMYK JPEG is refused
  there too: TensorFlow converts CMYK to RGB differently from OpenCV.
* **size**: more than ``MAX_PIXELS`` pixels is refused before decoding.
* **JPEG**: the EXIF orientation is applied (phones store photos sideways with a tag that
  says so); the IDCT is libjpeg's accurate integer one; grey becomes R = G = B. Other
  formats' EXIF tags are ignored.
* **16 bits** per channel become 8: ``round(v / 257)``.
* **grey** becomes R = G = B; **transparency** is composited over white:
  ``round((c * a + 255 * (255 - a)) / 255)``, so dark ink drawn in the alpha channel stays
  dark.
* **resize** to ``size`` x ``size`` (ignoring the aspect ratio) by pixel-area averaging
  (``area_resize``), computed exactly in integers and rounded half up, so NumPy and
  TensorFlow agree to the last level (OpenCV's ``INTER_AREA`` differs by at most one level).

TensorFlow is imported inside the ``tf_`` functions only.
"""

from __future__ import annotations

import contextlib
import os
import struct
import sys
import tempfile
import threading

import cv2
import numpy as np

#: Images with more pixels than this are refused before decoding (40 megapixels).
MAX_PIXELS = 40_000_000
#: What the exported model's signature decodes; the course's OpenCV paths read more.
SERVED_FORMATS = ("png", "jpeg")
#: The tag of the EXIF orientation, and the entries of the first EXIF directory read.
ORIENTATION_TAG = 0x0112
MAX_EXIF_ENTRIES = 128
#: JPEG markers walked before the image data (the EXIF and frame headers come first).
MAX_JPEG_MARKERS = 64

_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8", "jpeg"), (b"GIF87a", "gif"),
          (b"GIF89a", "gif"), (b"BM", "bmp"), (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"))


class ImageError(ValueError):
    """An image file the contract refuses (empty, corrupt, too large, or not served)."""


def image_format(data: bytes) -> str | None:
    """"png", "jpeg", "gif", "bmp", "webp" or "tiff" from the first bytes; None otherwise.
    Introduced in notebook 10."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((name for magic, name in _MAGIC if data.startswith(magic)), None)


def _jpeg_segments(data: bytes):
    """(marker, start) of each JPEG marker segment up to the image data, as
    ``_tf_jpeg_header`` walks them."""
    index = 2
    for _ in range(MAX_JPEG_MARKERS):
        if index + 4 > len(data) or data[index] != 0xFF:
            return
        marker = data[index + 1]
        if marker == 0xFF:
            index += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            index += 2
            continue
        yield marker, index
        if marker in (0xDA, 0xD9):
            return
        index += 2 + struct.unpack(">H", data[index + 2:index + 4])[0]


def _is_frame(marker: int) -> bool:
    return 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)


def _exif_orientation(data: bytes, base: int) -> int:
    """The orientation tag of the EXIF (TIFF) block at ``base``; 1 when there is none."""
    order = {b"II": "<", b"MM": ">"}.get(data[base:base + 2])
    if order is None or base + 8 > len(data):
        return 1
    directory = base + struct.unpack(order + "I", data[base + 4:base + 8])[0]
    if directory + 2 > len(data):
        return 1
    count = struct.unpack(order + "H", data[directory:directory + 2])[0]
    for entry in range(min(count, MAX_EXIF_ENTRIES)):
        start = directory + 2 + 12 * entry
        if start + 10 > len(data):
            break
        if struct.unpack(order + "H", data[start:start + 2])[0] == ORIENTATION_TAG:
            return struct.unpack(order + "H", data[start + 8:start + 10])[0]
    return 1


def jpeg_header(data: bytes) -> dict:
    """A JPEG's ``orientation`` (EXIF tag, 1 when absent), ``components`` (1 grey, 3 colour,
    4 CMYK; 0 when no frame header was found), ``width`` and ``height``, read from the
    marker segments without decoding. Introduced in notebook 10."""
    header = {"orientation": 1, "components": 0, "width": 0, "height": 0}
    exif_seen = False
    for marker, start in _jpeg_segments(data):
        if marker == 0xE1 and not exif_seen and data[start + 4:start + 10] == b"Exif\x00\x00":
            exif_seen = True
            header["orientation"] = _exif_orientation(data, start + 10)
        if _is_frame(marker) and start + 10 <= len(data):
            height, width = struct.unpack(">HH", data[start + 5:start + 9])
            header.update(height=height, width=width, components=data[start + 9])
            break
    return header


def with_orientation(jpeg: bytes, orientation: int) -> bytes:
    """A JPEG's bytes with an EXIF block holding only ``orientation`` (1 to 8) inserted
    after its start marker, as a phone writes a photo stored sideways. Introduced in
    notebook 10."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError(f"jpeg must be a JPEG file's bytes, got a file starting {jpeg[:4]!r}")
    if not 1 <= orientation <= 8:
        raise ValueError(f"orientation must be 1 to 8, got {orientation}")
    directory = struct.pack(">HHHIHHI", 1, ORIENTATION_TAG, 3, 1, orientation, 0, 0)
    exif = b"Exif\x00\x00" + b"MM\x00*" + struct.pack(">I", 8) + directory
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + jpeg[2:]


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, GIF or BMP header, without decoding; None for
    other formats or a header too short to say. Introduced in notebook 09."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)
    if data[:2] == b"\xff\xd8":
        header = jpeg_header(data)
        return (header["width"], header["height"]) if header["components"] else None
    return None


def served_problem(data: bytes) -> str | None:
    """Why the exported model's signature refuses these bytes (the same checks it makes
    in-graph), or None when it reads them as ``decode_image`` does. Introduced in notebook 10."""
    kind = image_format(data)
    if kind not in SERVED_FORMATS:
        named = f"a {kind.upper()} file" if kind else "not a PNG or JPEG file"
        return (f"it is {named}: the exported model reads PNG and JPEG images only; "
                f"convert it to PNG")
    if kind == "jpeg" and jpeg_header(data)["components"] == 4:
        return ("it is a CMYK JPEG: the exported model reads RGB and grey JPEGs only; "
                "convert it to RGB (or save it as PNG)")
    return None


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _decoder_messages():
    """Capture what C libraries write to file descriptor 2 (libjpeg's "Corrupt JPEG data"
    warnings) into a list of lines."""
    lines: list[str] = []
    with _STDERR_LOCK, tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines.extend(capture.read().decode("utf-8", "replace").splitlines())


def to_rgb(image: np.ndarray) -> np.ndarray:
    """OpenCV's decoded array (grey, grey + alpha, BGR or BGRA; 8 or 16 bits) as RGB uint8:
    16 bits as ``round(v / 257)``, transparency composited over white. Introduced in
    notebook 10."""
    if image.dtype == np.uint16:
        image = np.rint(image / 257.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(np.rint(image.astype(np.float64) * 255), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 2:  # grey + alpha
        image = np.dstack([image[..., 0]] * 3 + [image[..., 1]])
    if image.shape[2] == 4:
        alpha = image[..., 3:4].astype(np.int32)
        colour = image[..., :3].astype(np.int32)
        image = ((colour * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_BGR2RGB)


def area_weights(length: int, size: int) -> np.ndarray:
    """(size, length) integer weights of pixel-area averaging along one axis: how much of
    source pixel i (the interval [size*i, size*(i+1))) falls in target pixel j
    ([length*j, length*(j+1))). Each row sums to ``length``. Introduced in notebook 10."""
    source = np.arange(length)[None, :] * size
    target = np.arange(size)[:, None] * length
    overlap = np.minimum(source + size, target + length) - np.maximum(source, target)
    return np.maximum(overlap, 0)


def area_resize(image: np.ndarray, size: int) -> np.ndarray:
    """An RGB uint8 image (H, W, 3) resized to (size, size, 3) by pixel-area averaging: the
    weighted sum in integers (exact in float64), divided by H * W and rounded half up.
    ``tf_area_resize`` gives the same pixels. Introduced in notebook 10."""
    height, width = image.shape[:2]
    if (height, width) == (size, size):
        return image
    rows_weights = area_weights(height, size).astype(np.float64)
    columns_weights = area_weights(width, size).astype(np.float64)
    flat = image.reshape(height, -1)
    rows = np.zeros((size, flat.shape[1]))
    for start in range(0, height, 1024):  # float64 copies of 1,024 rows at a time
        rows += rows_weights[:, start:start + 1024] @ flat[start:start + 1024].astype(np.float64)
    total = np.einsum("jw,iwc->ijc", columns_weights, rows.reshape(size, width, -1))
    scale = float(height * width)
    return np.floor((2 * total + scale) / (2 * scale)).astype(np.uint8)


def decode_image(data: bytes, name: str = "image", size: int | None = None) -> np.ndarray:
    """Decode image bytes to RGB uint8 by the contract (module docstring), resized to
    (size, size) with ``area_resize`` when ``size`` is given. ``ImageError`` naming ``name``
    when the file is empty, corrupt, not an image, over ``MAX_PIXELS`` or a JPEG with
    corrupt data. Introduced in notebook 09."""
    if not data:
        raise ImageError(f"cannot decode image file {name}: it is empty")
    dimensions = image_dimensions(data)
    if dimensions is not None and dimensions[0] * dimensions[1] > MAX_PIXELS:
        width, height = dimensions
        raise ImageError(f"image file {name} is {width}x{height} = "
                         f"{width * height / 1e6:,.0f} megapixels, over the limit of "
                         f"{MAX_PIXELS / 1e6:.0f} megapixels (mmcourse.data.images.MAX_PIXELS): "
                         f"resize it first, e.g. to 1024 pixels on the long side")
    array = np.frombuffer(data, np.uint8)
    is_jpeg = data[:2] == b"\xff\xd8"
    try:  # IMREAD_COLOR applies the JPEG's EXIF orientation; JPEG has no alpha
        with _decoder_messages() as messages:  # and libpng's complaints stay off the screen
            image = cv2.imdecode(array, cv2.IMREAD_COLOR if is_jpeg else cv2.IMREAD_UNCHANGED)
    except cv2.error as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "OpenCV error"
        raise ImageError(f"cannot decode image file {name}: {reason}") from None
    if image is None or image.size == 0:
        said = [m.strip() for m in messages if m.strip()]
        raise ImageError(f"cannot decode image file {name}: it is empty, corrupt or not an "
                         f"image" + (f" (the decoder says: {said[0][:120]})" if said else ""))
    # other threads may decode PNGs meanwhile: their libpng warnings are not this JPEG's
    corrupt = [m for m in messages if is_jpeg and m.strip() and
               not m.lstrip().startswith(("libpng", "[ WARN"))]
    if corrupt:
        raise ImageError(f"image file {name} has corrupt JPEG data (the decoder says: "
                         f"{corrupt[0].strip()}): re-export or replace it")
    image = to_rgb(image)
    return image if size is None else area_resize(image, size)


def check_served(data: bytes, name: str = "image", size: int | None = None) -> np.ndarray:
    """``decode_image`` for a file that the exported model must also read: ``ImageError``
    with ``served_problem``'s reason when its signature would refuse it.
    Introduced in notebook 10."""
    problem = served_problem(data) if data else None
    if problem is not None:
        raise ImageError(f"image file {name}: {problem}")
    return decode_image(data, name, size)


# --- the same contract in TensorFlow ops (the exported signature) -----------------------------


def _tf_length(data):
    import tensorflow as tf

    return tf.cast(tf.strings.length(data), tf.int64)


def _tf_bytes(data, start, count: int):
    """``count`` bytes of the scalar string ``data`` from ``start`` (int64) as int64 values,
    zeros past its end."""
    import tensorflow as tf

    padded = tf.strings.join([data, tf.constant(b"\x00" * count)])
    start = tf.clip_by_value(tf.cast(start, tf.int64), 0, _tf_length(data))
    chunk = tf.strings.substr(padded, start, tf.constant(count, tf.int64))
    return tf.cast(tf.io.decode_raw(chunk, tf.uint8), tf.int64)


def _tf_exif_orientation(data, base):
    """``_exif_orientation`` in TensorFlow ops."""
    import tensorflow as tf

    head = _tf_bytes(data, base, 8)
    little = tf.logical_and(tf.equal(head[0], 0x49), tf.equal(head[1], 0x49))
    big = tf.logical_and(tf.equal(head[0], 0x4D), tf.equal(head[1], 0x4D))

    def u16(low, high):
        return tf.where(little, low + 256 * high, 256 * low + high)

    offset = tf.where(little, head[4] + 256 * (head[5] + 256 * (head[6] + 256 * head[7])),
                      head[7] + 256 * (head[6] + 256 * (head[5] + 256 * head[4])))
    directory = base + offset
    count_bytes = _tf_bytes(data, directory, 2)
    count = u16(count_bytes[0], count_bytes[1])
    entries = tf.reshape(_tf_bytes(data, directory + 2, 12 * MAX_EXIF_ENTRIES),
                         (MAX_EXIF_ENTRIES, 12))
    tags = u16(entries[:, 0], entries[:, 1])
    values = u16(entries[:, 8], entries[:, 9])
    inside = directory + 2 + 12 * tf.range(MAX_EXIF_ENTRIES, dtype=tf.int64) + 10 <= \
        _tf_length(data)
    found = tf.logical_and(tf.logical_and(tf.equal(tags, ORIENTATION_TAG), inside),
                           tf.range(MAX_EXIF_ENTRIES, dtype=tf.int64) < count)
    found = tf.logical_and(found, tf.logical_or(little, big))
    first = tf.argmax(tf.cast(found, tf.int32), output_type=tf.int64)
    return tf.where(tf.reduce_any(found), values[first], tf.constant(1, tf.int64))


def _tf_jpeg_header(data):
    """``jpeg_header``'s (orientation, components, width, height) in TensorFlow ops: a
    ``tf.while_loop`` over the marker segments."""
    import tensorflow as tf

    length = _tf_length(data)
    exif_magic = tf.constant([ord(c) for c in "Exif\x00\x00"], tf.int64)

    def body(index, orientation, exif_seen, frame, done):
        head = _tf_bytes(data, index, 10)
        marker = head[1]
        fill = tf.equal(marker, 0xFF)
        standalone = tf.logical_or(tf.logical_or(tf.equal(marker, 0xD8), tf.equal(marker, 0x01)),
                                   tf.logical_and(marker >= 0xD0, marker <= 0xD7))
        segment = tf.logical_not(tf.logical_or(fill, standalone))
        broken = tf.logical_or(index + 4 > length, tf.not_equal(head[0], 0xFF))
        is_exif = tf.logical_and(tf.logical_and(segment, tf.equal(marker, 0xE1)),
                                 tf.logical_and(tf.logical_not(exif_seen), tf.reduce_all(
                                     tf.equal(head[4:10], exif_magic))))
        is_exif = tf.logical_and(is_exif, tf.logical_not(broken))
        orientation = tf.where(is_exif, _tf_exif_orientation(data, index + 10), orientation)
        exif_seen = tf.logical_or(exif_seen, is_exif)
        is_frame = tf.logical_and(tf.logical_and(marker >= 0xC0, marker <= 0xCF), tf.reduce_all(
            tf.not_equal(marker, tf.constant([0xC4, 0xC8, 0xCC], tf.int64))))
        is_frame = tf.logical_and(tf.logical_and(is_frame, tf.logical_not(broken)),
                                  index + 10 <= length)
        frame = tf.where(is_frame, tf.stack([head[9], 256 * head[7] + head[8],
                                             256 * head[5] + head[6]]), frame)
        stop = tf.logical_or(broken, tf.logical_or(is_frame, tf.logical_and(segment, tf.logical_or(
            tf.equal(marker, 0xDA), tf.equal(marker, 0xD9)))))
        step = tf.where(fill, tf.constant(1, tf.int64), tf.where(
            standalone, tf.constant(2, tf.int64), 2 + 256 * head[2] + head[3]))
        return index + step, orientation, exif_seen, frame, stop

    _, orientation, _, frame, _ = tf.while_loop(
        lambda *state: tf.logical_not(state[-1]), body,
        (tf.constant(2, tf.int64), tf.constant(1, tf.int64), tf.constant(False),
         tf.zeros([3], tf.int64), tf.constant(False)), maximum_iterations=MAX_JPEG_MARKERS)
    return orientation, frame[0], frame[1], frame[2]


def tf_orient(image, orientation):
    """An image (H, W, C) turned upright by its EXIF ``orientation`` (1 to 8; other values
    leave it as it is), as OpenCV's JPEG reader does. Introduced in notebook 10."""
    import tensorflow as tf

    def transposed():
        return tf.transpose(image, [1, 0, 2])

    branches = [lambda: image,                                    # 1: upright
                lambda: tf.reverse(image, [1]),                   # 2: mirrored
                lambda: tf.reverse(image, [0, 1]),                # 3: upside down
                lambda: tf.reverse(image, [0]),                   # 4: mirrored, upside down
                transposed,                                       # 5: mirrored, turned
                lambda: tf.reverse(transposed(), [1]),            # 6: turned clockwise
                lambda: tf.reverse(transposed(), [0, 1]),         # 7: mirrored, turned
                lambda: tf.reverse(transposed(), [0])]            # 8: turned anticlockwise
    valid = tf.logical_and(orientation >= 1, orientation <= 8)
    index = tf.cast(tf.where(valid, orientation - 1, 0), tf.int32)
    return tf.switch_case(index, branches)


def tf_area_resize(image, size: int):
    """``area_resize`` in TensorFlow ops: uint8 (H, W, 3) to (size, size, 3), the same
    pixels. Introduced in notebook 10."""
    import tensorflow as tf

    def weights(length):
        source = tf.range(length, dtype=tf.float64)[None, :] * size
        target = tf.range(size, dtype=tf.float64)[:, None] * tf.cast(length, tf.float64)
        overlap = tf.minimum(source + size, target + tf.cast(length, tf.float64)) - \
            tf.maximum(source, target)
        return tf.maximum(overlap, 0.0)

    shape = tf.shape(image)
    pixels = tf.cast(image, tf.float64)
    rows = tf.einsum("ih,hwc->iwc", weights(shape[0]), pixels)
    total = tf.einsum("jw,iwc->ijc", weights(shape[1]), rows)
    scale = tf.cast(shape[0] * shape[1], tf.float64)
    return tf.cast(tf.floor((2 * total + scale) / (2 * scale)), tf.uint8)


def tf_decode_image(data, size: int):
    """One image's encoded bytes (scalar ``tf.string``) to RGB uint8 (size, size, 3) by the
    contract, TensorFlow ops only: PNG (8 or 16 bits, grey, alpha over white) and JPEG (EXIF
    orientation, grey, accurate IDCT). Other formats, CMYK JPEGs and images over
    ``MAX_PIXELS`` fail an assertion whose message says why and what to do; a corrupt file
    fails in TensorFlow's decoder. Introduced in notebook 10."""
    import tensorflow as tf

    head = _tf_bytes(data, 0, 24)
    png_magic = tf.constant(list(b"\x89PNG\r\n\x1a\n"), tf.int64)
    is_png = tf.reduce_all(tf.equal(head[:8], png_magic))
    is_jpeg = tf.logical_and(tf.equal(head[0], 0xFF), tf.equal(head[1], 0xD8))
    orientation, components, width, height = _tf_jpeg_header(data)

    def big_endian(values):
        return tf.reduce_sum(values * tf.constant([1 << 24, 1 << 16, 1 << 8, 1], tf.int64))

    width = tf.where(is_png, big_endian(head[16:20]), width)
    height = tf.where(is_png, big_endian(head[20:24]), height)
    checks = [
        tf.debugging.Assert(tf.logical_or(is_png, is_jpeg), [
            "image contract: not a PNG or JPEG file (TIFF, GIF, BMP and WebP are read by the "
            "course but not by the exported model): convert it to PNG"]),
        tf.debugging.Assert(tf.logical_or(is_png, tf.not_equal(components, 4)), [
            "image contract: a CMYK JPEG (the exported model reads RGB and grey JPEGs "
            "only): convert it to RGB or save it as PNG"]),
        tf.debugging.Assert(width * height <= MAX_PIXELS, [
            f"image contract: over {MAX_PIXELS / 1e6:.0f} megapixels: resize it first, e.g. "
            f"to 1024 pixels on the long side"]),
    ]

    def png():
        pixels = tf.io.decode_png(data, channels=0, dtype=tf.uint16)
        values = tf.cast(tf.round(tf.cast(pixels, tf.float64) / 257.0), tf.int32)
        channels = tf.shape(values)[2]
        grey, opaque = values[..., :1], tf.fill(tf.shape(values[..., :1]), 255)
        rgba = tf.switch_case(channels - 1, [
            lambda: tf.concat([grey, grey, grey, opaque], -1),
            lambda: tf.concat([grey, grey, grey, values[..., 1:2]], -1),
            lambda: tf.concat([values[..., :3], opaque], -1),
            lambda: values[..., :4]])
        alpha = rgba[..., 3:]
        over_white = (rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255
        return tf.cast(over_white, tf.uint8)

    def jpeg():
        pixels = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")
        return tf_orient(pixels, orientation)

    with tf.control_dependencies(checks):
        image = tf.cond(is_png, png, jpeg)
    return tf.ensure_shape(tf_area_resize(image, size), (size, size, 3))
