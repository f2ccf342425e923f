"""Segment change records (Avro ``io.touchstream.SegmentChange``) and their line in the outbox.

The profile script writes each change as a JSON array (slots ``layout.SEGMENT_LINE_*``), because
some changes are born in Lua alone (a merged or deleted OneID leaving every segment). The line
carries who will send it (``writer``): a loop or a refresh produces its own lines right after
the script; a deletion's lines are orphans that the next sweep sends.

Reasons: ``event`` (the batch's events; ``message_id`` is the person's last one), ``time`` (a
re-check or a timer: time alone changed the answer), ``merge`` (the survivor after a merge),
``merged`` (this OneID was merged into ``survivor``), ``deleted``, ``refresh`` (an SQL segment).
"""

from __future__ import annotations

import json
from typing import Any

from profiles import layout as L

ENTERED = L.SEGMENT_ENTERED
EXITED = L.SEGMENT_EXITED
REASON_EVENT = "event"
REASON_TIME = "time"
REASON_MERGE = "merge"
REASON_MERGED = L.REASON_MERGED
REASON_DELETED = L.REASON_DELETED
REASON_REFRESH = "refresh"


def idempotency_key(segment: str, oneid: str, version: int) -> str:
    """The same for a record and its re-sends; the version orders one segment's changes."""
    return f"{segment}:{oneid}:{version}"


def parse_line(line: str | bytes) -> tuple[dict[str, Any], str]:
    """An outbox line -> (the record, who sends it: ``layout.WRITER_*``)."""
    items = json.loads(line)

    def slot(n: int) -> Any:
        return items[n - 1]

    segment, oneid, version = slot(L.SEGMENT_LINE_SEGMENT), slot(L.SEGMENT_LINE_ONEID), int(
        slot(L.SEGMENT_LINE_VERSION))
    record = {
        "type": slot(L.SEGMENT_LINE_CHANGE),
        "segment": segment,
        "oneid": oneid,
        "idempotency_key": idempotency_key(segment, oneid, version),
        "version": version,
        "reason": slot(L.SEGMENT_LINE_REASON),
        "as_of": int(slot(L.SEGMENT_LINE_AS_OF)),
        "changed_at": int(slot(L.SEGMENT_LINE_CHANGED_AT)),
        "message_id": slot(L.SEGMENT_LINE_MESSAGE_ID) or None,
        "survivor": slot(L.SEGMENT_LINE_SURVIVOR) or None,
        "facts": slot(L.SEGMENT_LINE_FACTS) or "{}",
    }
    return record, slot(L.SEGMENT_LINE_WRITER)


def from_line(line: str | bytes) -> dict[str, Any]:
    """The record an outbox line holds."""
    return parse_line(line)[0]
