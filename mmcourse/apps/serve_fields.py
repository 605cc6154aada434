"""What one request to ``python -m mmcourse serve`` may ask, and its fields checked
(notebook 10): ``Limits``, ``ApiError`` (the HTTP status and the field at fault), and the
checks every served model shares: JSON fields of a kind, texts, image bytes (their header
checked before anything is decoded), base64 and data URLs, whole numbers in a range.
"""

import base64
import binascii
from dataclasses import dataclass

import numpy as np

from mmcourse.data import folders


@dataclass
class Limits:
    """What one request may ask: ``max_body_bytes`` of JSON, images of ``max_pixels`` (by
    their header), texts of ``max_text_chars``, ``max_instances`` per call, and at most
    ``max_requests`` requests in flight (beyond them: 503). Introduced in notebook 10."""

    max_body_bytes: int = 8_000_000
    max_pixels: int = 4096 * 4096
    max_text_chars: int = 1000
    max_instances: int = 256
    max_requests: int = 64


class ApiError(Exception):
    """A request the server refuses: HTTP ``status``, the ``param`` (field) at fault and a
    message that says what was expected. Introduced in notebook 10."""

    def __init__(self, status: int, param: str | None, message: str,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.param, self.message, self.kind = status, param, message, kind


def request_field(container, key, where: str, kinds, required: bool = True, default=None):
    """``container[key]`` (``container`` a JSON object, named ``where``) checked to be one of
    ``kinds``; ``default`` when it is missing or null and not ``required``."""
    if not isinstance(container, dict):
        raise ApiError(400, where or "body", f"{where or 'body'} must be a JSON object, got "
                                             f"{type(container).__name__}")
    name = f"{where}.{key}" if where else key
    if key not in container or container[key] is None:
        if required:
            raise ApiError(400, name, f"{name} is missing")
        return default
    value, kinds = container[key], kinds if isinstance(kinds, tuple) else (kinds,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ApiError(400, name, f"{name} must be {names}, got {type(value).__name__}")
    return value


def check_text(value, name: str, limits: Limits) -> str:
    """A non-empty text of at most ``limits.max_text_chars`` characters."""
    if not isinstance(value, str):
        raise ApiError(400, name, f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ApiError(400, name, f"{name} is empty; give a text")
    if len(value) > limits.max_text_chars:
        raise ApiError(400, name, f"{name} has {len(value):,} characters, over the limit of "
                                  f"{limits.max_text_chars:,}")
    return value


def check_image(data: bytes, name: str, limits: Limits, size: int | None = None) -> np.ndarray:
    """The image bytes decoded to RGB uint8 (resized to ``size``), after the header's
    width x height is checked against ``limits.max_pixels`` (before any decoding)."""
    if not data:
        raise ApiError(400, name, f"{name} is empty; give the bytes of a PNG or JPEG image")
    dimensions = folders.image_dimensions(data)
    if dimensions is None:
        raise ApiError(400, name, f"{name} is not a PNG, JPEG, GIF or BMP image (its header "
                                  f"says so)")
    width, height = dimensions
    if width * height > limits.max_pixels or width == 0 or height == 0:
        raise ApiError(400, name, f"{name} is {width}x{height} pixels by its header, outside "
                                  f"1 to {limits.max_pixels:,} pixels; refused before "
                                  f"decoding")
    try:
        return folders.decode_image(data, name, size)
    except folders.DataError as error:
        raise ApiError(400, name, str(error)) from None


def b64_bytes(value, name: str) -> bytes:
    """The bytes of a base64 string (``name`` says where it came from)."""
    if not isinstance(value, str):
        raise ApiError(400, name, f"{name} must be a base64 string, got "
                                  f"{type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, name, f"{name} is not valid base64") from None


def data_url_bytes(url, name: str) -> bytes:
    """The bytes of a ``data:image/...;base64,...`` URL; other URLs are refused (the server
    never fetches anything)."""
    if not isinstance(url, str):
        raise ApiError(400, name, f"{name} must be a string, got {type(url).__name__}")
    head, comma, payload = url.partition(",")
    if not (head.startswith("data:image/") and head.endswith(";base64") and comma):
        raise ApiError(400, name, f"{name} must be a data URL, data:image/png;base64,... (the "
                                  f"server fetches nothing), got {url[:40]!r}")
    return b64_bytes(payload, name)


def bounded_int(value, name: str, low: int, high: int) -> int:
    """``value`` (the field ``name``) as a whole number from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ApiError(400, name, f"{name} must be a whole number from {low} to {high}, got "
                                  f"{value!r}")
    if not low <= value <= high:
        raise ApiError(400, name, f"{name} must be from {low} to {high}, got {value!r}")
    return int(value)
