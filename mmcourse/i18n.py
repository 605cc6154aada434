"""Messages in English or Chinese through the standard ``gettext`` machinery (issue 28).

``check-data`` and ``grade`` speak Chinese with ``--lang zh`` or, without ``--lang``, when the
locale is Chinese (``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES`` or ``LANG`` such as
``zh_CN.UTF-8``): ``with i18n.language(args.lang, from_locale=True): ...``. Everywhere else
(notebooks, the library) messages stay English, so stored outputs do not depend on the
machine. A message is marked ``_("... {name} ...").format(name=...)``; its translation lives
in ``mmcourse/locale/zh/LC_MESSAGES/mmcourse.po``, compiled to the ``.mo`` file next to it
(``tests/test_i18n.py`` checks that every marked message has both languages and that the
``.mo`` equals the ``.po``). After editing the ``.po``, compile it with
``msgfmt -o mmcourse/locale/zh/LC_MESSAGES/mmcourse.mo mmcourse/locale/zh/LC_MESSAGES/mmcourse.po``
(or ``pybabel compile -d mmcourse/locale -D mmcourse``). Introduced with the command line
(notebook 09).
"""

from __future__ import annotations

import contextlib
import gettext
import threading
from pathlib import Path

DOMAIN = "mmcourse"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("en", "zh")
_ENGLISH = gettext.NullTranslations()
_state = {"translation": _ENGLISH, "language": "en"}
_lock = threading.Lock()


def translation(language: str | None, from_locale: bool = False) -> gettext.NullTranslations:
    """The catalogue for ``language`` ("en" or "zh"); ``None`` with ``from_locale`` asks the
    locale variables, ``None`` alone is English. ``ValueError`` for another language."""
    if language is None:
        if not from_locale:
            return _ENGLISH
        return gettext.translation(DOMAIN, LOCALE_DIR, fallback=True)
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    if language == "en":
        return _ENGLISH
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[language])


@contextlib.contextmanager
def language(name: str | None, from_locale: bool = False):
    """Translate the messages made inside the block into ``name`` (see ``translation``);
    the previous language comes back afterwards."""
    chosen = translation(name, from_locale)
    with _lock:
        saved = dict(_state)
        _state["translation"] = chosen
        _state["language"] = "en" if chosen is _ENGLISH or not isinstance(
            chosen, gettext.GNUTranslations) else "zh"
    try:
        yield _state["language"]
    finally:
        with _lock:
            _state.update(saved)


def current() -> str:
    """The language messages are made in now: "en" or "zh"."""
    return _state["language"]


def _(message: str) -> str:
    """``message`` in the current language (``gettext``)."""
    return _state["translation"].gettext(message)


def N_(message: str) -> str:  # noqa: N802  (the gettext name for "mark, translate later")
    """Mark ``message`` for translation where it is defined; ``_`` translates it when used."""
    return message
