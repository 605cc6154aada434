"""What the command line's flags accept, and its messages for bad input (notebook 00).

The argparse ``type=`` functions name the bound a value missed; ``file_system_error`` turns
an ``OSError`` (read-only folder, disk full) into one line that names the flag.
"""

from __future__ import annotations

import argparse
import errno


def int_at_least(minimum: int):
    """An argparse ``type=``: a whole number >= ``minimum``; the message names the bound."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"int >= {minimum}"  # what argparse shows if it ever names the type
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_float(text: str) -> float:
    """An argparse ``type=``: a number > 0 (seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}") \
            from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text}")
    return value


def finite_float(bound: str):
    """An argparse ``type=``: a finite number ``>= 0`` or ``> 0`` (``bound``); the message
    names the bound."""
    holds = {">= 0": lambda value: value >= 0, "> 0": lambda value: value > 0}[bound]

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {bound}, got {text!r}") \
                from None
        if not holds(value) or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text}")
        return value

    parse.__name__ = f"number {bound}"
    return parse


def file_system_error(error: OSError, flag: str, path) -> str:
    """A one-line message for an OSError met while reading or writing ``path``."""
    where = f"{flag} {path}" if flag else str(path)
    if error.errno == errno.ENOSPC:
        return (f"error: no space left on the device while writing {where}: free some space "
                f"or choose another folder{' with ' + flag if flag else ''}")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"error: {where}: cannot write there ({error.strerror}); choose a folder you "
                f"can write to{' with ' + flag if flag else ''}")
    if error.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"error: {where}: a file is in the way, not a folder; give a folder"
    return f"error: {where}: {error.strerror or error} ({type(error).__name__})"
