"""The event as rules read it: a valid event time, clean text members, JSON parsed on first use.

:func:`event_time` decides the time an event is filed under (clamped to receipt + skew, so a
client clock cannot make a person's real events late); :class:`EventView` parses the
``properties``/``traits``/``context`` JSON only when a rule reads them and builds the
``event`` variable of CEL with only the members the rules need.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from profiles import dwell, jsonsafe
from profiles.conditions import EVENT_FIELDS, EVENT_OBJECTS, Refs

_PAGE_FIELDS = ("url", "referrer", "title", "search")
_MISS = object()  # "not cached yet" (None is a valid cached memo key)
# top-level members read as text (type, names, ids): anything else, or text with a lone
# surrogate, is treated as absent / cleaned before the engine or CEL sees it
_TEXT_FIELDS = ("type", "event", "name", "message_id", "anonymous_id", "user_id", "group_id", "source")
MAX_EVENT_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z; later (or negative) is invalid
MAX_MEMO_KEY_CHARS = 2048  # longer member values are evaluated, not memoized (memos are bounded by count)


def _object(text: Any) -> dict[str, Any]:
    return jsonsafe.loads_object(text)


def normalized(event: dict[str, Any]) -> dict[str, Any]:
    """The event itself when its text members are text (the common case), else a cleaned copy."""
    get = event.get
    for k in _TEXT_FIELDS:
        v = get(k)
        if v is not None and not (type(v) is str and v.isascii()):
            break
    else:
        return event  # hot path: every member absent or ASCII text
    bad = [k for k in _TEXT_FIELDS if (v := get(k)) is not None and not _clean_text(v)]
    if not bad:
        return event
    out = dict(event)
    for k in bad:
        v = out[k]
        out[k] = jsonsafe.fix_text(v) if isinstance(v, str) else None
    return out


def _clean_text(value: Any) -> bool:
    return type(value) is str and (value.isascii() or jsonsafe.fix_text(value) is value)


def _valid_time(value: Any) -> int | None:
    """An epoch-ms int in range, else None (bools, floats, text, negative or absurd times)."""
    if type(value) is not int or not 0 <= value <= MAX_EVENT_TIME_MS:
        return None
    return value


def event_time(event: dict[str, Any], skew_ms: int) -> int | None:
    """The time the engine files an event under: its timestamp, but never later than receipt + skew.

    A client clock (or a hostile client) dating one event a day ahead would otherwise make the
    person's real events "late" for a day. None: no valid timestamp (the event is skipped).
    """
    ts = _valid_time(event.get("timestamp"))
    if ts is None:
        return None
    received = _valid_time(event.get("received_at"))
    if received is not None and ts > received + skew_ms:
        return received + skew_ms
    return ts


class EventView:
    """An event dict with its JSON members parsed on first use and a ``build`` for CEL."""

    __slots__ = ("_context", "_keys", "_page", "_properties", "_traits", "raw")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self._properties: dict[str, Any] | None = None
        self._traits: dict[str, Any] | None = None
        self._context: dict[str, Any] | None = None
        self._page: dict[str, Any] | None = None
        self._keys: dict[tuple[str, ...], tuple[Any, ...] | None] = {}

    @property
    def properties(self) -> dict[str, Any]:
        if self._properties is None:
            self._properties = _object(self.raw.get("properties"))
        return self._properties

    @property
    def traits(self) -> dict[str, Any]:
        if self._traits is None:
            self._traits = _object(self.raw.get("traits"))
        return self._traits

    @property
    def context(self) -> dict[str, Any]:
        if self._context is None:
            self._context = _object(self.raw.get("context"))
        return self._context

    def page(self) -> dict[str, Any]:
        """path/url/referrer/title/search: Segment's page properties, else ``context.page``."""
        if self._page is None:
            props = self.properties
            ctx_page = self.context.get("page") if ("path" not in props and "url" not in props) else None
            source = ctx_page if isinstance(ctx_page, dict) else props
            page = {
                k: source.get(k) if isinstance(source.get(k), str) else "" for k in ("path", *_PAGE_FIELDS)
            }
            if not page["path"] and page["url"]:
                page["path"] = _url_path(page["url"])
            self._page = page
        return self._page

    @property
    def path(self) -> str:
        return self.page()["path"]

    def session(self) -> str:
        # context is large (userAgent, library, ip...): parse it only if it names a session
        raw_context = self.raw.get("context")
        context = self.context if isinstance(raw_context, str) and "ession" in raw_context else None
        return dwell.session_key(self.raw, context, self.properties)

    def memo_key(self, members: tuple[str, ...]) -> tuple[Any, ...] | None:
        """The values a memoizable condition reads (segments come from the path); None when they
        are too long to keep as a memo key (the condition is then simply evaluated)."""
        found: Any = self._keys.get(members, _MISS)
        if found is not _MISS:
            return found
        out = []
        size = 0
        for name in members:
            if name == "path" or name == "segments" or name in _PAGE_FIELDS:
                value = self.page()["path" if name == "segments" else name]
            else:
                value = self.raw.get(name)
            size += len(value) if isinstance(value, str) else 0
            out.append(value)
        key = self._keys[members] = tuple(out) if size <= MAX_MEMO_KEY_CHARS else None
        return key

    def build(self, needs: Refs | None) -> dict[str, Any]:
        """The ``event`` variable holding only the members ``needs`` lists (None: all)."""
        names = EVENT_FIELDS if needs is None else needs.keys()
        out: dict[str, Any] = {}
        for name in names:
            if name in EVENT_OBJECTS:
                obj = getattr(self, name)
                subs = None if needs is None else needs[name]
                out[name] = obj if subs is None else {k: obj[k] for k in subs if k in obj}
            elif name == "path" or name in _PAGE_FIELDS:
                out[name] = self.page()[name]
            elif name == "segments":
                out[name] = [s for s in self.path.split("/") if s]
            elif name == "session":
                out[name] = self.session()
            else:
                out[name] = jsonsafe.clean(self.raw.get(name))
        return out


def _url_path(url: str) -> str:
    """The path of a URL; an unparsable one (``http://[``) has none."""
    try:
        return urlsplit(url).path
    except ValueError:
        return ""
