"""The trigger kinds: one module each, found here, so adding a kind is one file (plus docs).

Every module of this package other than ``base`` exports ``KIND``, a
:class:`~profiles.triggers.kinds.base.TriggerKind` subclass. :data:`KINDS` lists them in the
order their event hooks run; :func:`get` finds the one that handles a ``kind:`` value.
"""

from __future__ import annotations

import importlib
import pkgutil

from profiles.triggers.kinds.base import TriggerKind


def _discover() -> tuple[type[TriggerKind], ...]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            found.append(importlib.import_module(f"{__name__}.{info.name}").KIND)
    return tuple(sorted(found, key=lambda kind: (kind.order, kind.__name__)))


KINDS: tuple[type[TriggerKind], ...] = _discover()
_BY_NAME: dict[str, type[TriggerKind]] = {name: kind for kind in KINDS for name in kind.names}
NAMES = frozenset(_BY_NAME)
TIMERS: dict[str, type[TriggerKind]] = {kind.timer: kind for kind in KINDS if kind.timer}


def get(name: str) -> type[TriggerKind]:
    """The kind that handles ``kind: <name>`` (KeyError for an unknown one: compile checks first)."""
    return _BY_NAME[name]
