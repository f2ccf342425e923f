"""Turning one file row into one Segment-spec message: column -> dotted field path.

``--map col=field`` names the target of a column; every other column gets a sensible default
(a column already named like a field keeps it; common CRM names such as ``mobile`` or
``order_time`` are recognised; the rest become traits of a contact or properties of an
order/event). Rows are turned into the same messages the HTTP API accepts, so the importers
share the collector's validation, dedup and identity handling.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from identity.identifiers import DEFAULT_CUSTOM_TYPES, extract_identifiers
from touchstream.errors import ConfigError, ValidationError
from touchstream.pseudonyms import Pseudonyms

KINDS: tuple[str, ...] = ("contacts", "orders", "events")
#: Reasons a row is rejected before validation (validation's own are in connectors.validation.REASONS).
IMPORT_REASONS: tuple[str, ...] = ("bad_row", "bad_json", "not_an_object", "bad_number", "mapping_conflict")
#: ``--map col=-`` drops a column.
SKIP = "-"

TOP_LEVEL_FIELDS = frozenset({
    "type", "event", "name", "category", "userId", "anonymousId", "previousId", "groupId", "messageId",
    "timestamp", "originalTimestamp", "sentAt",
})
OBJECT_FIELDS = frozenset({"properties", "traits", "context", "integrations"})
TIME_FIELDS = frozenset({"timestamp", "originalTimestamp", "sentAt"})
#: Segment's numeric e-commerce properties: a text cell here must parse as a number.
NUMERIC_FIELDS = frozenset(
    f"properties.{name}"
    for name in ("revenue", "value", "price", "quantity", "total", "subtotal", "tax", "shipping", "discount")
)
ORDER_EVENT = "Order Completed"
# Keys of Segment's own exports that are the platform's bookkeeping, not part of a message.
_SEGMENT_ENVELOPE = frozenset({"receivedAt", "channel", "version", "projectId", "writeKey", "_metadata",
                               "request_id", "loaded_at", "uuid_ts"})
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://touchstream.dev/import")
_INT = re.compile(r"^[+-]?\d+$")
# Strongest first: which identifier names a row's derived anonymousId.
_ANONYMOUS_FROM = ("crm_id", "wechat_unionid", "email", "phone", "wechat_openid", "device_id")
_ANONYMOUS_RANK = {t: i for i, t in enumerate(_ANONYMOUS_FROM)}

# Defaults by normalised column name (lower case, spaces and dashes as underscores).
_COMMON: dict[str, str] = {
    "user_id": "userId", "userid": "userId",
    "anonymous_id": "anonymousId", "anonymousid": "anonymousId",
    "message_id": "messageId", "messageid": "messageId",
}
_PERSON = {
    "email": "email", "e_mail": "email", "email_address": "email",
    "phone": "phone", "mobile": "phone", "phone_number": "phone", "mobile_phone": "phone",
    "cellphone": "phone", "mobile_number": "phone",
    "crm_id": "crm_id", "customer_id": "crm_id", "contact_id": "crm_id",
    "wechat_openid": "wechat_openid", "openid": "wechat_openid",
    "wechat_unionid": "wechat_unionid", "unionid": "wechat_unionid",
}
_CONTACT_TRAITS = {"created_at": "createdAt", "first_name": "firstName", "last_name": "lastName"}
_ORDER: dict[str, str] = {
    "order_id": "properties.order_id", "orderid": "properties.order_id", "order_no": "properties.order_id",
    "order_number": "properties.order_id",
    "amount": "properties.revenue", "revenue": "properties.revenue", "order_amount": "properties.revenue",
    "total_amount": "properties.revenue", "order_total": "properties.revenue",
    "currency": "properties.currency",
    "created_at": "timestamp", "order_time": "timestamp", "ordered_at": "timestamp",
    "order_date": "timestamp", "paid_at": "timestamp", "purchase_time": "timestamp",
}
# Top-level fields a column may fill just by its name; a contact's "name" column is a trait, not
# the page name an identify call would ignore.
_IDS_AND_TIMES = frozenset({"userId", "anonymousId", "messageId", "timestamp", "originalTimestamp", "sentAt"})
_KIND_TOP_LEVEL: dict[str, frozenset[str]] = {
    "contacts": _IDS_AND_TIMES,
    "orders": _IDS_AND_TIMES | {"event"},
    "events": TOP_LEVEL_FIELDS,
}
_EVENT: dict[str, str] = {
    "event_name": "event", "event_type": "type",
    "event_time": "timestamp", "created_at": "timestamp", "occurred_at": "timestamp",
}


def check_field(path: str) -> str:
    """``path`` if it is a Segment field we can set (``userId``, ``traits.email``...), else ConfigError."""
    if path == SKIP:
        return path
    if _is_field(path):
        return path
    raise ConfigError(
        f"--map target {path!r} is not a Segment field: use one of {', '.join(sorted(TOP_LEVEL_FIELDS))}, "
        f"or a path under {', '.join(sorted(OBJECT_FIELDS))} (e.g. traits.email), or '-' to skip"
    )


def _is_field(path: str, top_level: frozenset[str] = TOP_LEVEL_FIELDS) -> bool:
    root, _, rest = path.partition(".")
    if not rest:
        return root in top_level or root in OBJECT_FIELDS
    return root in OBJECT_FIELDS and all(rest.split("."))


def parse_mapping(spec: str | Iterable[str] | None) -> dict[str, str]:
    """``"col=field,col2=field2"`` (or several such strings) -> ``{col: field}``, checked."""
    if spec is None:
        return {}
    parts: list[str] = []
    for item in [spec] if isinstance(spec, str) else spec:
        parts.extend(p for p in item.split(",") if p.strip())
    mapping: dict[str, str] = {}
    for part in parts:
        column, sep, target = part.rpartition("=")
        column, target = column.strip(), target.strip()
        if not sep or not column or not target:
            raise ConfigError(f"--map entry {part.strip()!r} must look like column=field")
        if column in mapping:
            raise ConfigError(f"--map names column {column!r} twice")
        mapping[column] = check_field(target)
    return mapping


def _norm_column(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip()).lower()


def default_target(
    kind: str, column: str, *, custom_types: Iterable[str] = DEFAULT_CUSTOM_TYPES
) -> str | None:
    """Where ``column`` goes when ``--map`` does not say; None when only the fallthrough applies."""
    if _is_field(column, _KIND_TOP_LEVEL[kind]):
        return column
    key = _norm_column(column)
    if key in _COMMON:
        return _COMMON[key]
    person_root = "traits" if kind == "contacts" else "context.traits"
    person = _PERSON.get(key) or (key if key in custom_types else None)
    if kind == "contacts":
        if person:
            return f"traits.{person}"
        if key in _CONTACT_TRAITS:
            return f"traits.{_CONTACT_TRAITS[key]}"
        return None
    if kind == "orders" and key in _ORDER:
        return _ORDER[key]
    if kind == "events" and key in _EVENT:
        return _EVENT[key]
    if person:
        return f"{person_root}.{person}"
    return None


class RowMapper:
    """Builds the message for one row of ``kind`` from ``file_name`` (targets memoised per column)."""

    def __init__(
        self,
        kind: str,
        mapping: Mapping[str, str],
        *,
        file_name: str,
        custom_types: tuple[str, ...] = DEFAULT_CUSTOM_TYPES,
        default_region: str = "CN",
        derive_anonymous_id: bool = True,
        timezone: tzinfo | None = None,
        pseudonyms: Pseudonyms,
    ) -> None:
        """``timezone``: where times written without an offset were written (None: UTC).
        ``pseudonyms``: derived ids (messageId, anonymousId) are keyed hashes of row content and
        identifiers, so none can be searched back to a person without the secret."""
        self.timezone = timezone
        if kind not in KINDS:
            raise ConfigError(f"unknown import kind {kind!r}; use one of {', '.join(KINDS)}")
        self.kind = kind
        self.mapping = {column: check_field(target) for column, target in mapping.items()}
        self.file_name = file_name
        self.custom_types = custom_types
        self.default_region = default_region
        self.pseudonyms = pseudonyms
        self.derive_anonymous_id = derive_anonymous_id
        self._targets: dict[tuple[str, bool], str | None] = {}

    def check_columns(self, columns: Iterable[str] | None) -> None:
        """A ``--map`` column that the file does not have is a typo: say so before importing."""
        if columns is None:
            return
        missing = sorted(set(self.mapping) - set(columns))
        if missing:
            raise ConfigError(
                f"--map names columns that {self.file_name} does not have: {', '.join(missing)}"
            )

    def _fallthrough(self, column: str) -> str:
        return f"{'traits' if self.kind == 'contacts' else 'properties'}.{column}"

    def target(self, column: str, segment_like: bool = False) -> str | None:
        """Field path of ``column`` (None: dropped)."""
        if column in self.mapping:
            mapped = self.mapping[column]
            return None if mapped == SKIP else mapped
        key = (column, segment_like)
        if key not in self._targets:
            found = default_target(self.kind, column, custom_types=self.custom_types)
            envelope = self.kind == "events" and column in _SEGMENT_ENVELOPE
            if found is None and not segment_like and not envelope:
                found = self._fallthrough(column)
            self._targets[key] = found
        return self._targets[key]

    def map(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The message for one row; :class:`ValidationError` (field = column) if it cannot be mapped."""
        # A JSONL/Parquet row with nested properties/traits/context is a Segment message already:
        # unknown top-level keys are dropped, as the Tracking API would, not made into properties.
        segment_like = self.kind == "events" and any(isinstance(data.get(k), dict) for k in OBJECT_FIELDS)
        message: dict[str, Any] = {}
        explicit: list[tuple[str, str, Any]] = []
        for column, value in data.items():
            if value is None or value == "":
                continue
            target = self.target(column, segment_like)
            if target is None:
                continue
            if column in self.mapping:
                explicit.append((column, target, value))
            else:
                _set(message, target, _convert(column, target, value, self.timezone), overwrite=False,
                     column=column)
        for column, target, value in explicit:  # --map wins over defaults
            _set(message, target, _convert(column, target, value, self.timezone), overwrite=True,
                 column=column)

        if self.kind == "contacts":
            message["type"] = "identify"
        elif self.kind == "orders":
            message["type"] = "track"
            message.setdefault("event", ORDER_EVENT)
        elif "type" not in message and "event" in message:
            message["type"] = "track"

        if "messageId" not in message:
            message["messageId"] = self.message_id(data)
        if self.derive_anonymous_id and "userId" not in message and "anonymousId" not in message:
            anonymous = self._anonymous_id(message)
            if anonymous is not None:
                message["anonymousId"] = anonymous
        return message

    def message_id(self, data: Mapping[str, Any]) -> str:
        """uuid5 over the keyed hash of (kind, file name, row content): a re-import of the file
        sends the same ids (under the same secret)."""
        content = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        keyed = self.pseudonyms.of_any("import-row", f"{self.kind}\x1f{self.file_name}\x1f{content}")
        return uuid.uuid5(_NAMESPACE, keyed).hex

    def _anonymous_id(self, message: Mapping[str, Any]) -> str | None:
        """A stable anonymousId from the row's strongest identifier (Segment requires one of the two ids).

        Derived from the normalised value, so every row of the same person, in any file, gets the same.
        """
        valid, _ = extract_identifiers(
            message, custom_types=self.custom_types, default_region=self.default_region
        )
        if not valid:
            return None
        rank = _ANONYMOUS_RANK
        best = min(valid, key=lambda ident: (rank.get(ident["type"], len(rank)), ident["type"]))
        return "imp-" + self.pseudonyms.of(best["type"], best["value"])[:32]


def _convert(column: str, target: str, value: Any, zone: tzinfo | None = None) -> Any:
    if target in NUMERIC_FIELDS:
        return _number(column, target, value)
    if target in TIME_FIELDS:
        return _time_text(value, zone)
    return value


def _number(column: str, target: str, value: Any) -> int | float:
    if isinstance(value, bool):
        raise ValidationError(column, "bad_number", f"column {column!r} ({target}) must be a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise ValidationError(column, "bad_number", f"column {column!r} ({target}) must be a finite number")
    if isinstance(value, str):
        text = value.strip()
        if _INT.match(text):
            return int(text)
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return number
    raise ValidationError(column, "bad_number", f"column {column!r} ({target}) must be a number")


def _time_text(value: Any, zone: tzinfo | None = None) -> Any:
    """Epoch seconds or milliseconds (numbers or digit strings) become ISO-8601; with ``zone``, a
    time written without an offset ("2024-05-01 10:30", "2024/5/1") is read in that zone and
    written in UTC; the rest is left as is.

    Validation parses the text (naive times are UTC) and rejects what is not a time.
    """
    if zone is not None and isinstance(value, str):
        zoned = _in_zone(value, zone)
        if zoned is not None:
            return zoned
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and _INT.match(value.strip()) and len(value.strip()) >= 9:
        number = float(value.strip())
    if number is None or not math.isfinite(number):
        return value
    seconds = number / 1000 if abs(number) >= 1e11 else number
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return value


_NAIVE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
                  "%Y/%m/%d")


def _in_zone(text: str, zone: tzinfo) -> str | None:
    """UTC ISO text of a time written without an offset, read in ``zone``; None for anything else."""
    stripped = text.strip()
    try:
        parsed: datetime | None = datetime.fromisoformat(stripped)
    except ValueError:
        parsed = None
        for pattern in _NAIVE_FORMATS:
            try:
                parsed = datetime.strptime(stripped, pattern)  # noqa: DTZ007  (the zone is added below)
                break
            except ValueError:
                continue
    if parsed is None or parsed.tzinfo is not None:
        return None
    return parsed.replace(tzinfo=zone).astimezone(UTC).isoformat().replace("+00:00", "Z")


def _set(message: dict[str, Any], path: str, value: Any, *, overwrite: bool, column: str) -> None:
    """Set a dotted path, creating objects on the way; objects meeting objects are merged."""
    parts = path.split(".")
    node = message
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ValidationError(
                column, "mapping_conflict", f"column {column!r}: {path} crosses a non-object"
            )
        node = child
    leaf = parts[-1]
    existing = node.get(leaf)
    if isinstance(existing, dict) and isinstance(value, dict):
        node[leaf] = {**existing, **value} if overwrite else {**value, **existing}
    elif existing is not None and not overwrite:
        return
    elif isinstance(existing, dict) and not isinstance(value, dict):
        raise ValidationError(column, "mapping_conflict", f"column {column!r}: {path} is already an object")
    else:
        node[leaf] = value
