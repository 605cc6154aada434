"""Drawing a scene: the colours, shapes and sizes of its objects, and ``render_scene``,
which draws them with OpenCV, anti-aliased, on a plain gray 64x64 background
(notebook 01).
"""

from __future__ import annotations

import cv2
import numpy as np

IMAGE_SIZE = 64

#: RGB colours, chosen to stay distinct from each other and from the background.
COLOURS = {
    "red": (230, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 90, 230),
    "yellow": (240, 220, 40),
    "magenta": (210, 60, 210),
    "cyan": (40, 210, 220),
}
SHAPES = ("circle", "square", "triangle")
#: Attributes level: radius range (pixels, inclusive) for each size word.
SIZES = {"small": (6, 9), "large": (15, 19)}
BACKGROUND = (120, 120, 120)


def object_extent(obj: dict) -> float:
    """Half-width of the object's bounding box (triangles and squares reach a bit further)."""
    return {"circle": 1.0, "square": 0.89, "triangle": 1.2}[obj["shape"]] * obj["r"]


def render_scene(objects, size: int = IMAGE_SIZE, background=BACKGROUND) -> np.ndarray:
    """Draw ``objects`` (dicts with shape, colour, x, y, r) on a plain background.

    Returns an RGB uint8 array (size, size, 3). Shapes are anti-aliased (``cv2.LINE_AA``);
    ``r`` is the circle radius, about half the square's side and 5/6 of the triangle's
    circumradius. Introduced in notebook 01.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    image = np.empty((size, size, 3), np.uint8)
    image[:] = background
    shift = 4  # sub-pixel vertices: coordinates are multiplied by 2**shift
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict) or not {"shape", "colour", "x", "y", "r"} <= set(obj):
            raise ValueError(f"objects[{index}] must be a dict with shape, colour, x, y, r; "
                             f"got {obj!r}")
        if obj["shape"] not in SHAPES:
            raise ValueError(f"objects[{index}] has shape {obj['shape']!r}; expected one of {SHAPES}")
        if obj["colour"] not in COLOURS:
            raise ValueError(f"objects[{index}] has colour {obj['colour']!r}; expected one of "
                             f"{tuple(COLOURS)}")
        colour = COLOURS[obj["colour"]]
        x, y, r = float(obj["x"]), float(obj["y"]), float(obj["r"])
        if obj["shape"] == "circle":
            points = None
            cv2.circle(image, (round(x * 16), round(y * 16)), round(r * 16), colour, -1,
                       cv2.LINE_AA, shift)
            continue
        if obj["shape"] == "square":
            half = 0.89 * r
            points = [(x - half, y - half), (x + half, y - half), (x + half, y + half),
                      (x - half, y + half)]
        else:  # triangle pointing up, centred on its centroid
            radius = 1.2 * r
            dx = radius * np.sqrt(3) / 2
            points = [(x, y - radius), (x + dx, y + radius / 2), (x - dx, y + radius / 2)]
        polygon = np.round(np.array(points) * 2**shift).astype(np.int32)
        cv2.fillPoly(image, [polygon], colour, cv2.LINE_AA, shift)
    return image
