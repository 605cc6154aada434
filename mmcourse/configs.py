"""What the course's configuration dataclasses share: a config with keyword overrides
(``with_options``) and the checks of their fields. ``MatcherConfig`` (build_model's
architecture, notebook 04) and ``TrainConfig`` (the fit options, notebook 04) use them.
No Keras, no NumPy: a config is cheap to make and to compare.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping


def is_int(value) -> bool:
    """An integer (Python or NumPy), and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A real number (Python or NumPy), and not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_int(name: str, value) -> int:
    """``value`` as an int >= 1, or a ``ValueError`` naming ``name``. Introduced in
    notebook 02."""
    if not (is_int(value) and value >= 1):
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_positive_ints(config, names, optional=()) -> None:
    """A ``ValueError`` naming the first field of ``names`` (or of ``optional``, which may
    also be None) that is not a positive int."""
    for name in (*names, *optional):
        value = getattr(config, name)
        if value is not None or name in names:
            positive_int(name, value)


def with_options(cls, config=None, options: Mapping | None = None):
    """``config`` (an instance of the dataclass ``cls``; None: its defaults) with the fields
    named in ``options`` replaced, checked again by its ``__post_init__``. A ``TypeError``
    that lists the fields for a name that is none of them, or a config of another type."""
    if config is not None and not isinstance(config, cls):
        raise TypeError(f"config must be a {cls.__name__}, got {type(config).__name__}")
    options = dict(options or {})
    fields = [field.name for field in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown}; the options are {cls.__name__}'s "
                        f"fields: {', '.join(fields)}")
    return dataclasses.replace(config or cls(), **options)
