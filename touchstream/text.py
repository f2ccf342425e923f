"""Text every layer must be able to carry, and the one shape of names users write.

``is_utf8`` is the UTF-8 check shared by the edge and identity; ``NAME`` is what an identifier
type, a rule, an aggregate or a tag may be called (lower case, digits, underscore; up to 40).
"""

from __future__ import annotations

import re

NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


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
