"""Time on a page by event time: pure functions over one session's open page view.

A page view (``page`` or ``screen`` event) whose page matches a dwell rule opens a *view*
for its session (``context.sessionId``/``properties.session_id`` when the SDK sends one,
else the anonymous id, else the user id). The view is measured by the next event of the
same session that says where the person is:

* another ``page``/``screen`` event for a different path closes the view at its time;
* the same path again (a reload) or a ``track "Heartbeat"`` measures without closing:
  the person is still on the page, so time keeps counting from the first load;
* ``track "Page Left"`` closes the view at its time.

dwell = measuring time - open time; a rule fires when dwell > its threshold, at most once per
view (its idempotency key is the opening event's messageId). A view nobody measures is closed
by the watermark sweep once ``watermark - open > threshold``, so the trigger comes within
seconds even if the person never clicks again. Events older than the open view (late
arrivals) neither close it nor open another: dwell follows the order in which a person's
events arrive, which for one session is the order they were sent.

The event names are defaults; the rules file can rename them (``dwell.leave_events``,
``dwell.heartbeat_events``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from profiles import jsonsafe

PAGE_TYPES = frozenset({"page", "screen"})
LEAVE_EVENTS = ("Page Left",)
HEARTBEAT_EVENTS = ("Heartbeat",)


@dataclass(frozen=True)
class View:
    """One open page view of one session, with the dwell rules it is measured for."""

    sid: str
    open_ms: int
    path: str
    message_id: str
    rules: dict[str, int]  # rule name -> threshold ms
    fired: frozenset[str] = field(default_factory=frozenset)

    def due_ms(self) -> int | None:
        """When the sweep must look at it: just past the smallest unfired threshold."""
        pending = [t for r, t in self.rules.items() if r not in self.fired]
        return self.open_ms + min(pending) + 1 if pending else None

    def to_json(self) -> str:
        return jsonsafe.dumps(
            {
                "o": self.open_ms,
                "p": self.path,
                "m": self.message_id,
                "r": self.rules,
                "f": sorted(self.fired),
            }
        )

    @classmethod
    def from_json(cls, sid: str, text: str) -> View:
        data = json.loads(text)
        return cls(sid, int(data["o"]), data["p"], data["m"], dict(data["r"]), frozenset(data.get("f", ())))


@dataclass(frozen=True)
class DwellHit:
    """A rule whose threshold the view passed: fire ``rule`` for this view."""

    rule: str
    view: View
    dwell_ms: int
    closed: bool

    @property
    def event_time(self) -> int:
        """When the threshold was passed (open + threshold + 1 ms): the same whoever measures it."""
        return self.view.open_ms + self.view.rules[self.rule] + 1


def session_key(
    event: dict[str, Any], context: dict[str, Any] | None, properties: dict[str, Any] | None
) -> str:
    """Short stable id of the session an event belongs to (see module doc)."""
    raw = None
    for source in (context, properties):
        if source:
            raw = source.get("sessionId") or source.get("session_id")
            if raw:
                break
    raw = raw or event.get("anonymous_id") or event.get("user_id") or "-"
    text = raw if isinstance(raw, str) else jsonsafe.dumps(raw)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()


def measure(view: View, at_ms: int, *, closed: bool) -> tuple[View, list[DwellHit]]:
    """Hits for every unfired rule with dwell > threshold at ``at_ms``; the view marks them fired."""
    dwell = at_ms - view.open_ms
    hits = [
        DwellHit(rule, view, dwell, closed)
        for rule, threshold in view.rules.items()
        if rule not in view.fired and dwell > threshold
    ]
    if not hits:
        return view, []
    return replace(view, fired=view.fired | {h.rule for h in hits}), hits


def on_page(
    view: View | None,
    *,
    sid: str,
    ts_ms: int,
    path: str,
    message_id: str,
    matching: dict[str, int],
    in_order: bool = True,
) -> tuple[View | None, list[DwellHit]]:
    """A page/screen event of session ``sid``; ``matching`` = dwell rules its page matches."""
    if view is not None and ts_ms < view.open_ms:
        return view, []  # older than the open view: a late arrival changes nothing
    hits: list[DwellHit]
    if view is not None and path == view.path:
        view, hits = measure(view, ts_ms, closed=False)  # a reload: still on the page
        return _alive(view), hits
    hits = []
    if view is not None:
        _, hits = measure(view, ts_ms, closed=True)
    new_view = View(sid, ts_ms, path, message_id, dict(matching)) if matching and in_order else None
    return new_view, hits


def on_heartbeat(view: View | None, ts_ms: int) -> tuple[View | None, list[DwellHit]]:
    """Still on the page at ``ts_ms``: measure, keep the view open."""
    if view is None or ts_ms < view.open_ms:
        return view, []
    view, hits = measure(view, ts_ms, closed=False)
    return _alive(view), hits


def on_leave(view: View | None, ts_ms: int) -> tuple[View | None, list[DwellHit]]:
    """The page was left at ``ts_ms``: measure and close."""
    if view is None or ts_ms < view.open_ms:
        return view, []
    _, hits = measure(view, ts_ms, closed=True)
    return None, hits


def on_watermark(view: View | None, watermark_ms: int) -> tuple[View | None, list[DwellHit]]:
    """The sweep: nothing heard from the session up to ``watermark_ms``.

    Rules whose threshold passed fire. Whoever measures, a view is dropped once every rule
    fired, so an open view lives no longer than its largest threshold plus the sweep period.
    """
    if view is None:
        return None, []
    view, hits = measure(view, watermark_ms, closed=False)
    return _alive(view), hits


def _alive(view: View) -> View | None:
    """A view whose every rule fired has nothing left to measure: drop it (no orphan state)."""
    return None if view.due_ms() is None else view
