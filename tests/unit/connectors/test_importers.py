"""connectors.importers: CSV/JSONL/Parquet rows -> Segment messages -> submit, every row counted."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.importers import ImportSummary, RowMapper, import_file, open_reader, parse_mapping
from connectors.outcome import Outcome
from connectors.validation import Limits, validate_message
from tests.conftest import TEST_PSEUDONYMS
from touchstream.errors import ConfigError, TouchstreamError, ValidationError
from touchstream.pseudonyms import Pseudonyms

NOW = datetime.now(UTC)
RECENT = (NOW - timedelta(days=3)).replace(microsecond=0)


class FakeSubmit:
    """Validation as the collector does it, plus an in-memory dedup; remembers what it saw."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.calls: list[list[dict]] = []
        self.records: list[dict] = []
        self.seen: set[str] = set()

    def __call__(self, messages: list[dict]) -> list[Outcome]:
        self.calls.append(messages)
        received = time.time_ns() // 1_000_000
        outcomes = []
        for index, message in enumerate(messages):
            try:
                record = validate_message(message, type_=None, received_at_ms=received, source="import",
                                          limits=self.limits)
            except ValidationError as exc:
                outcomes.append(Outcome.from_error(index, exc))
                continue
            duplicate = record["message_id"] in self.seen
            self.seen.add(record["message_id"])
            if not duplicate:
                self.records.append(record)
            outcomes.append(Outcome.ok(index, duplicate=duplicate))
        return outcomes

    @property
    def messages(self) -> list[dict]:
        return [m for call in self.calls for m in call]


def write_csv(path: Path, header: list[str], rows: list[list[object]], *, bom: bool = False) -> Path:
    with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)
                              for line in lines) + "\n", encoding="utf-8")
    return path


def run(path: Path, kind: str, mapping: dict[str, str] | None = None, submit: FakeSubmit | None = None,
        **kw: object) -> tuple[ImportSummary, FakeSubmit]:
    submit = submit or FakeSubmit()
    kw.setdefault("pseudonyms", TEST_PSEUDONYMS)
    summary = import_file(path, kind=kind, mapping=mapping or {}, submit=submit, progress=False, **kw)
    assert summary.rows == summary.accepted + summary.duplicates + summary.rejected
    return summary, submit


def identifiers(record: dict) -> set[tuple[str, str]]:
    return {(i["type"], i["value"]) for i in record["identifiers"]}


# --- contacts ------------------------------------------------------------------------------------


def test_contacts_csv_with_crm_column_names(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "crm.csv", ["name", "Email", "mobile", "crm_id", "city", "created_at"], [
        ["张三", " Zhang@Example.com ", "139 1234 5678", "C-1", "上海", "2024-01-02"],
        ["李四", "bad-email", "12", "C-2", "", ""],
        ["王五", "", "", "", "北京", ""],  # no identifier at all
    ], bom=True)
    summary, submit = run(path, "contacts")
    assert (summary.rows, summary.accepted, summary.rejected) == (3, 2, 1)
    assert summary.reasons == {"missing_identity": 1}
    assert summary.rejected_rows[0].row == 3 and summary.rejected_rows[0].field == "userId"

    first, second, _ = submit.messages
    assert first["type"] == "identify"
    assert first["traits"] == {"name": "张三", "email": "Zhang@Example.com", "phone": "139 1234 5678",
                               "crm_id": "C-1", "city": "上海", "createdAt": "2024-01-02"}
    assert "city" not in second["traits"]  # an empty cell is absent, not ""
    record = submit.records[0]
    expected = {("email", "zhang@example.com"), ("phone", "+8613912345678"), ("crm_id", "C-1")}
    assert expected <= identifiers(record)
    assert {(i["type"], i["reason"]) for i in submit.records[1]["invalid_identifiers"]} == {
        ("email", "email_syntax"), ("phone", "phone_invalid")}


def test_derived_anonymous_id_is_stable_per_person_across_files(tmp_path: Path) -> None:
    a = write_csv(tmp_path / "a.csv", ["crm_id", "email"], [["C-1", "x@example.com"]])
    b = write_csv(tmp_path / "b.csv", ["crm_id", "plan"], [["C-1", "pro"]])
    c = write_csv(tmp_path / "c.csv", ["crm_id"], [["C-2"]])
    ids = [run(p, "contacts")[1].messages[0]["anonymousId"] for p in (a, b, c)]
    assert ids[0] == ids[1] != ids[2]
    assert ids[0].startswith("imp-")
    # Phone spelt two ways is one person.
    d = write_csv(tmp_path / "d.csv", ["phone"], [["139 1234 5678"], ["+86 139-1234-5678"]])
    first, second = run(d, "contacts")[1].messages
    assert first["anonymousId"] == second["anonymousId"]


def test_derived_ids_are_keyed_so_no_identifier_can_be_searched_back(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", ["phone"], [["139 1234 5678"]])
    [message] = run(path, "contacts")[1].messages
    [again] = run(path, "contacts", pseudonyms=Pseudonyms("another-secret-" + "9" * 32))[1].messages
    texts = ("phone:+8613912345678", "+8613912345678")
    unkeyed = {uuid.uuid5(uuid.NAMESPACE_URL, text).hex for text in texts}
    unkeyed |= {hashlib.sha256(text.encode()).hexdigest()[:32] for text in texts}
    assert message["anonymousId"] == "imp-" + TEST_PSEUDONYMS.of("phone", "+8613912345678")[:32]
    assert message["anonymousId"][4:] not in unkeyed
    assert again["anonymousId"] != message["anonymousId"] and again["messageId"] != message["messageId"]


def test_derivation_can_be_turned_off_and_never_replaces_given_ids(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["crm_id", "user_id"], [["C-1", ""], ["C-2", "u-2"]])
    summary, submit = run(path, "contacts", derive_anonymous_id=False)
    assert summary.reasons == {"missing_identity": 1}
    _, submit = run(path, "contacts")
    assert "anonymousId" not in submit.messages[1] and submit.messages[1]["userId"] == "u-2"


def test_explicit_mapping_wins_and_can_skip_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "export.csv", ["客户ID", "手机", "email", "notes"],
                     [["K-9", "13912345678", "a@example.com", "secret"]])
    mapping = parse_mapping("客户ID=userId,手机=traits.phone, notes=-,email=traits.work_email")
    _, submit = run(path, "contacts", mapping)
    message = submit.messages[0]
    assert message["userId"] == "K-9"
    assert message["traits"] == {"phone": "13912345678", "work_email": "a@example.com"}


def test_mapping_errors_are_config_errors(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    with pytest.raises(ConfigError, match="does not have: mobile"):
        run(path, "contacts", {"mobile": "traits.phone"})
    for bad in ("email", "email=", "email=trait.email", "email=userId.x", "a=b,a=userId", "x=traits..y"):
        with pytest.raises(ConfigError):
            parse_mapping(bad)
    with pytest.raises(ConfigError):
        run(path, "people")
    assert parse_mapping(["a=userId", "b=properties.order.id,c=-"]) == {
        "a": "userId", "b": "properties.order.id", "c": "-"}
    assert parse_mapping(None) == {}


# --- orders --------------------------------------------------------------------------------------


def test_orders_csv_defaults_numbers_and_unmappable_rows(tmp_path: Path) -> None:
    order_time = RECENT.strftime("%Y-%m-%d %H:%M:%S")
    header = ["order_id", "amount", "currency", "order_time", "email", "sku"]
    path = write_csv(tmp_path / "orders.csv", header, [
        ["O-1", "199.50", "CNY", order_time, "Buyer@Example.com", "S1"],
        ["O-2", "not a number", "CNY", order_time, "b@example.com", "S2"],
        ["O-3", "12", "CNY", order_time, "", "S3"],
        ["O-4", "5", "CNY", "2001-01-01 00:00:00", "c@example.com", "S4"],  # older than two years
    ])
    summary, submit = run(path, "orders")
    assert (summary.rows, summary.accepted, summary.rejected) == (4, 1, 3)
    assert summary.reasons == {"bad_number": 1, "missing_identity": 1, "timestamp_out_of_range": 1}
    bad = {r.row: r for r in summary.rejected_rows}
    assert bad[2].reason == "bad_number" and bad[2].field == "amount"
    assert bad[3].reason == "missing_identity" and bad[4].field == "timestamp"

    message = submit.messages[0]
    assert message["type"] == "track" and message["event"] == "Order Completed"
    assert message["properties"] == {"order_id": "O-1", "revenue": 199.5, "currency": "CNY", "sku": "S1"}
    assert message["context"] == {"traits": {"email": "Buyer@Example.com"}}
    record = submit.records[0]
    assert record["timestamp"] == int(RECENT.timestamp() * 1000)  # a naive time is UTC
    assert ("email", "buyer@example.com") in identifiers(record)
    assert json.loads(record["properties"])["revenue"] == 199.5


def test_integer_revenue_stays_integer_and_an_event_column_overrides(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "o.csv", ["user_id", "revenue", "event"], [["u", "42", "Order Refunded"]])
    message = run(path, "orders")[1].messages[0]
    assert message["properties"]["revenue"] == 42 and isinstance(message["properties"]["revenue"], int)
    assert message["event"] == "Order Refunded"


# --- message ids and re-imports ------------------------------------------------------------------


def test_reimport_is_all_duplicates_and_ids_are_deterministic(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "orders.csv", ["order_id", "user_id", "amount"],
                     [["O-1", "u1", "10"], ["O-2", "u2", "20"], ["O-1", "u1", "10"]])
    submit = FakeSubmit()
    first, _ = run(path, "orders", submit=submit)
    assert (first.accepted, first.duplicates) == (2, 1)  # the repeated row is the same order
    second, _ = run(path, "orders", submit=submit)
    assert (second.accepted, second.duplicates, second.rejected) == (0, 3, 0)
    ids = [m["messageId"] for m in submit.messages]
    assert ids[:3] == ids[3:]
    assert len(set(ids)) == 2 and all(len(i) == 32 for i in ids)

    renamed = write_csv(tmp_path / "orders-copy.csv", ["order_id", "user_id", "amount"],
                        [["O-1", "u1", "10"]])
    as_contacts = RowMapper("contacts", {}, file_name="orders.csv", pseudonyms=TEST_PSEUDONYMS).message_id(
        {"order_id": "O-1"})
    assert run(renamed, "orders")[1].messages[0]["messageId"] not in ids
    as_orders = RowMapper("orders", {}, file_name="orders.csv", pseudonyms=TEST_PSEUDONYMS).message_id(
        {"order_id": "O-1"})
    assert as_contacts != as_orders


def test_a_message_id_column_is_used(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "e.csv", ["messageId", "userId", "event"], [["m-1", "u", "Signed Up"]])
    assert run(path, "events")[1].messages[0]["messageId"] == "m-1"


# --- events: JSONL -------------------------------------------------------------------------------


def test_events_jsonl_segment_messages_and_bad_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "events.ndjson", [
        {"type": "track", "event": "Product Viewed", "userId": "u1", "messageId": "m1",
         "timestamp": RECENT.isoformat(), "properties": {"sku": "S1"}, "context": {"ip": "1.1.1.1"},
         "receivedAt": RECENT.isoformat(), "channel": "server", "customTop": 1},
        "",
        "{not json",
        "[1, 2]",
        {"type": "page", "anonymousId": "a1", "name": "Home", "path": "/", "referrer": "x"},
        {"type": "identify", "userId": "u1", "traits": {"email": "U1@Example.com"}},
        {"event": "Signed Up", "userId": "u3"},  # no type: a track
        {"type": "track", "userId": "u4"},  # no event
    ])
    summary, submit = run(path, "events")
    assert summary.rows == 7
    assert (summary.accepted, summary.rejected) == (4, 3)
    assert summary.reasons == {"bad_json": 1, "not_an_object": 1, "missing": 1}
    assert sorted(r.row for r in summary.rejected_rows) == [2, 3, 7]
    track, page, _, signed_up, _ = submit.messages
    assert track == {"type": "track", "event": "Product Viewed", "userId": "u1", "messageId": "m1",
                     "timestamp": RECENT.isoformat(), "properties": {"sku": "S1"},
                     "context": {"ip": "1.1.1.1"}}
    assert page["properties"] == {"path": "/", "referrer": "x"} and page["name"] == "Home"
    assert ("email", "u1@example.com") in identifiers(submit.records[2])
    assert signed_up["type"] == "track"


def test_gzipped_jsonl_and_csv(tmp_path: Path) -> None:
    raw = json.dumps({"type": "track", "event": "E", "userId": "u"}) + "\n"
    (tmp_path / "e.jsonl.gz").write_bytes(gzip.compress(raw.encode() * 3))
    summary, _ = run(tmp_path / "e.jsonl.gz", "events")
    assert (summary.rows, summary.accepted, summary.duplicates) == (3, 1, 2)
    (tmp_path / "c.csv.gz").write_bytes(gzip.compress(b"email\na@example.com\nb@example.com\n"))
    assert run(tmp_path / "c.csv.gz", "contacts")[0].accepted == 2


def test_csv_row_with_too_many_cells_is_rejected_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("email,phone\na@example.com,13912345678\nb@example.com,1,extra\n\nc@example.com\n")
    summary, submit = run(path, "contacts")
    assert summary.rows == 3 and summary.reasons == {"bad_row": 1}
    assert summary.rejected_rows[0].row == 2
    assert submit.messages[-1]["traits"] == {"email": "c@example.com"}  # a short row is fine


def test_epoch_times_become_iso(tmp_path: Path) -> None:
    seconds = int(RECENT.timestamp())
    path = write_csv(tmp_path / "e.csv", ["userId", "event", "timestamp"],
                     [["u", "A", str(seconds)], ["u", "B", str(seconds * 1000)]])
    _, submit = run(path, "events")
    assert [r["timestamp"] for r in submit.records] == [seconds * 1000, seconds * 1000]


# --- Parquet and streaming -----------------------------------------------------------------------


def test_parquet_orders_streamed_in_chunks(tmp_path: Path) -> None:
    count = 50
    table = pa.table({
        "order_id": [f"O-{i}" for i in range(count)],
        "crm_id": [f"C-{i % 5}" for i in range(count)],
        "amount": pa.array([Decimal(f"{i}.25") for i in range(count)], pa.decimal128(10, 2)),
        "quantity": pa.array([i % 3 for i in range(count)], pa.int32()),
        "created_at": pa.array([RECENT + timedelta(minutes=i) for i in range(count)],
                               pa.timestamp("ms", tz="UTC")),
        "note": [None if i % 2 else "gift" for i in range(count)],
    })
    path = tmp_path / "orders.parquet"
    pq.write_table(table, path, row_group_size=16)
    summary, submit = run(path, "orders", batch_size=7)
    assert (summary.rows, summary.accepted, summary.rejected) == (count, count, 0)
    assert [len(c) for c in submit.calls] == [7] * 7 + [1]
    message = submit.messages[1]
    assert message["properties"] == {"order_id": "O-1", "revenue": 1.25, "quantity": 1}
    assert message["context"] == {"traits": {"crm_id": "C-1"}}
    assert submit.records[1]["timestamp"] == int((RECENT + timedelta(minutes=1)).timestamp() * 1000)
    assert ("crm_id", "C-1") in identifiers(submit.records[1])


def test_text_files_are_read_as_a_stream(tmp_path: Path) -> None:
    rows = [[f"user-{i}", "Viewed", f"p-{i}"] for i in range(20000)]
    path = write_csv(tmp_path / "big.csv", ["userId", "event", "product"], rows)
    size = path.stat().st_size
    positions: list[int] = []
    submit = FakeSubmit()
    with open_reader(path) as reader:
        for chunk in reader.chunks(100):
            positions.append(reader.position())
            submit([{"type": "track", **row.data} for row in chunk if row.data])
            if len(positions) == 3:
                break
    assert positions[0] < size / 4  # the first chunk came long before the file was read
    summary, _ = run(path, "events", batch_size=1000)
    assert summary.accepted == 20000


def test_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "x.xls").write_bytes(b"")  # the pre-2007 binary format
    with pytest.raises(ConfigError, match="unknown file type"):
        run(tmp_path / "x.xls", "contacts")
    (tmp_path / "x.xlsx").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"x.xlsx: not a readable .xlsx workbook"):
        run(tmp_path / "x.xlsx", "contacts")
    with pytest.raises(ConfigError, match="no such file"):
        run(tmp_path / "missing.csv", "contacts")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ConfigError, match="header"):
        run(tmp_path / "empty.csv", "contacts")


# --- summary, submit contract, progress ----------------------------------------------------------


def test_summary_render(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "o.csv", ["user_id", "amount"], [["u", "x"], ["u", "1"], ["", "2"]])
    summary, _ = run(path, "orders")
    text = summary.render()
    assert "o.csv as orders" in text
    assert "rejected             2" in text.replace(",", "")
    assert "bad_number" in text and "missing_identity" in text
    assert "row 1: bad_number [amount]" in text
    assert "row 3: missing_identity [userId]" in text


def test_rejected_rows_keep_no_values(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "o.csv", ["email", "amount"], [["secret@example.com", "12 yuan"]])
    summary, _ = run(path, "orders")
    assert "secret@example.com" not in summary.render() and "12 yuan" not in summary.render()


def test_submit_must_answer_every_message(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"], ["b@example.com"]])
    with pytest.raises(TouchstreamError):
        import_file(path, kind="contacts", mapping={}, submit=lambda msgs: [Outcome.ok(0)], progress=False,
                    pseudonyms=TEST_PSEUDONYMS)
    with pytest.raises(TouchstreamError):
        import_file(path, kind="contacts", mapping={}, progress=False,
                    submit=lambda msgs: [Outcome.ok(0) for _ in msgs], pseudonyms=TEST_PSEUDONYMS)


def test_outcomes_are_matched_by_index_not_order(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"], ["b@example.com"]])

    def reversed_submit(messages: list[dict]) -> list[Outcome]:
        return [Outcome.rejected(1, "too_large", "body"), Outcome.ok(0)]

    summary = import_file(path, kind="contacts", mapping={}, submit=reversed_submit, progress=False,
                          pseudonyms=TEST_PSEUDONYMS)
    assert summary.accepted == 1 and summary.rejected_rows[0].row == 2


def test_progress_bar_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path / "c.csv", ["email"], [["a@example.com"]])
    summary = import_file(path, kind="contacts", mapping={}, submit=FakeSubmit(), progress=True,
                          pseudonyms=TEST_PSEUDONYMS)
    assert summary.accepted == 1
    captured = capsys.readouterr()
    assert "c.csv" in captured.err and captured.out == ""
