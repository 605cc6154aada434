"""``MatcherConfig``: the architecture options of ``build_model`` in one frozen dataclass,
checked when it is made (notebook 04; the relational options in notebook 06).

``build_model(task, fusion, config)`` takes one, or its fields as keywords
(``build_model("match", "concat", hidden_units=128)``). Fields left at None take a default
that depends on the fusion (``resolved``): ``MODEL_DEFAULTS``, overridden by
``RELATIONAL_DEFAULTS`` and ``OBJECT_DEFAULTS``. No Keras here: a config is cheap to make
and to compare.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from mmcourse.configs import check_positive_ints, is_int, is_number
from mmcourse.names import OBJECT_FUSIONS

IMAGE_SHAPE = (64, 64, 3)
POOLINGS = ("avg", "max", "avgmax")
#: Defaults of the fields that differ between models (None in the config).
MODEL_DEFAULTS = {"filters": (16, 32, 32), "width": None, "coordinates": False,
                  "batch_norm": False, "anchored": False, "hops": 2}
#: The relational models' own defaults (notebook 06): CoordConv and batch normalisation
#: for every one of them, so the baselines get the same image encoder.
RELATIONAL_DEFAULTS = {
    "cnn_mlp": {"width": 256, "coordinates": True, "batch_norm": True},
    "relation_network": {"filters": (16, 32, 32, 32), "width": 64, "coordinates": True,
                         "batch_norm": True},
    "anchored": {"width": 64, "coordinates": True, "batch_norm": True, "anchored": True},
    "transformer": {"width": 64, "coordinates": True, "batch_norm": True},
}
#: The objects model's width (notebook 06): its relation module's g is ``width`` wide.
OBJECT_DEFAULTS = {"width": 64}

_POSITIVE_INTS = ("embedding_dim", "text_units", "fusion_units", "hidden_units", "rank",
                  "num_heads", "key_dim")
_OPTIONAL_POSITIVE_INTS = ("width", "hops")
_OPTIONAL_BOOLS = ("batch_norm", "coordinates", "anchored")


@dataclass(frozen=True)
class MatcherConfig:
    """The architecture of a matcher (see ``build_model`` for what each option does).

    ``image_shape`` is (height, width, channels), or (slots, features) object tokens for the
    ``objects`` fusion; ``filters`` the image encoder's convolutions; ``pooling`` one of
    ``POOLINGS``; ``normalize`` ends both encoders in a ``LayerNormalization``;
    ``embedding_dim`` and ``text_units`` size the text encoder, ``fusion_units``,
    ``rank``, ``num_heads``, ``key_dim`` and ``multiply_activation`` the fusion,
    ``hidden_units`` the head; ``learning_rate`` is Adam's. Notebook 06's relational models
    add ``width``, ``hops``, ``frequencies``, ``dropout``, ``coordinates``, ``batch_norm``
    and ``anchored``. A bad value is a ``ValueError`` naming the field. Introduced in
    notebook 04.
    """

    image_shape: tuple = IMAGE_SHAPE
    filters: tuple | None = None
    pooling: str = "avgmax"
    batch_norm: bool | None = None
    normalize: bool = True
    embedding_dim: int = 32
    text_units: int = 32
    fusion_units: int = 32
    hidden_units: int = 64
    learning_rate: float | Callable = 2e-3
    rank: int = 4
    num_heads: int = 2
    key_dim: int = 16
    multiply_activation: str | Callable | None = None
    width: int | None = None
    hops: int | None = None
    frequencies: int = 3
    dropout: float = 0.0
    coordinates: bool | None = None
    anchored: bool | None = None

    def __post_init__(self):
        try:
            image_shape = tuple(self.image_shape)
        except TypeError:
            image_shape = None
        if image_shape is None or len(image_shape) not in (2, 3) or not all(
                is_int(d) and d > 0 for d in image_shape):
            raise ValueError(f"image_shape must be (height, width, channels), or (slots, "
                             f"features) for the objects fusion, got {self.image_shape!r}")
        object.__setattr__(self, "image_shape", image_shape)
        if self.filters is not None:
            filters = tuple(self.filters) if not isinstance(self.filters, (str, int)) else ()
            if not filters or not all(is_int(f) and f > 0 for f in filters):
                raise ValueError(f"filters must be a non-empty sequence of positive ints, got "
                                 f"{self.filters!r}")
            object.__setattr__(self, "filters", filters)
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got "
                             f"{self.pooling!r}")
        check_positive_ints(self, _POSITIVE_INTS, _OPTIONAL_POSITIVE_INTS)
        for name in ("normalize", *_OPTIONAL_BOOLS):
            value = getattr(self, name)
            if not isinstance(value, bool) and (value is not None or name == "normalize"):
                raise ValueError(f"{name} must be True or False, got {value!r}")
        if not is_int(self.frequencies) or self.frequencies < 0:
            raise ValueError(f"frequencies must be an int >= 0, got {self.frequencies!r}")
        if not is_number(self.dropout) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not (callable(self.learning_rate) or (
                is_number(self.learning_rate) and self.learning_rate > 0)):
            raise ValueError(f"learning_rate must be a positive number (or a Keras learning "
                             f"rate schedule), got {self.learning_rate!r}")
        if not (self.multiply_activation is None or isinstance(self.multiply_activation, str)
                or callable(self.multiply_activation)):
            raise ValueError(f"multiply_activation must be None, an activation name or a "
                             f"function, got {self.multiply_activation!r}")

    def resolved(self, fusion: str) -> MatcherConfig:
        """This config with its None fields set to ``fusion``'s defaults."""
        defaults = {**MODEL_DEFAULTS, **RELATIONAL_DEFAULTS.get(fusion, {}),
                    **(OBJECT_DEFAULTS if fusion in OBJECT_FUSIONS else {})}
        return dataclasses.replace(self, **{
            name: value for name, value in defaults.items() if getattr(self, name) is None})
