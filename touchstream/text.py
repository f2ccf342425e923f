"""Text every layer must be able to carry: the one UTF-8 check shared by the edge and identity."""

from __future__ import annotations


def is_utf8(text: str) -> bool:
    """False when ``text`` holds a lone surrogate ("\\ud800", from a JSON escape or JavaScript
    slicing an emoji): UTF-8, hence Avro, Kafka and Redis, cannot carry it. ASCII is checked free."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
