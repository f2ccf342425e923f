"""What Chinese CRMs export: GBK text with Chinese headers, local times without an offset, .xlsx."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from connectors.importers import import_file, open_reader
from connectors.importers.readers import detect_encoding
from connectors.outcome import Outcome
from connectors.validation import Limits, validate_message
from tests.conftest import TEST_PSEUDONYMS
from touchstream.errors import ConfigError, ValidationError

SHANGHAI = ZoneInfo("Asia/Shanghai")
LOCAL = (datetime.now(SHANGHAI) - timedelta(days=2)).replace(microsecond=0, tzinfo=None)  # as a CRM writes it


def submit_into(records: list[dict]):  # type: ignore[no-untyped-def]
    def submit(messages: list[dict]) -> list[Outcome]:
        outcomes = []
        for index, message in enumerate(messages):
            try:
                records.append(validate_message(message, type_=None, received_at_ms=time.time_ns() // 10**6,
                                                source="import", limits=Limits()))
                outcomes.append(Outcome.ok(index))
            except ValidationError as exc:
                outcomes.append(Outcome.from_error(index, exc))
        return outcomes

    return submit


def gbk_orders(path: Path) -> Path:
    text = "订单号,手机,金额,下单时间\nA1,13912345678,199.5,{t}\nA2,13912345679,20,{t}\n".format(
        t=LOCAL.strftime("%Y/%m/%d %H:%M"))
    path.write_bytes(text.encode("gbk"))
    return path


def test_a_gbk_file_is_detected_and_its_chinese_headers_map(tmp_path: Path) -> None:
    path = gbk_orders(tmp_path / "orders.csv")
    assert detect_encoding(path) == "gb18030"
    with open_reader(path) as reader:
        assert reader.columns == ["订单号", "手机", "金额", "下单时间"]
    records: list[dict] = []
    summary = import_file(path, kind="orders", submit=submit_into(records), progress=False,
                          mapping={"订单号": "properties.order_id", "手机": "traits.phone",
                                   "金额": "properties.revenue", "下单时间": "timestamp"},
                          timezone=SHANGHAI, pseudonyms=TEST_PSEUDONYMS)
    assert (summary.rows, summary.accepted) == (2, 2), summary.render()
    assert {("phone", "+8613912345678")} <= {(i["type"], i["value"]) for i in records[0]["identifiers"]}


def test_local_times_are_read_in_the_given_zone(tmp_path: Path) -> None:
    records: list[dict] = []
    import_file(gbk_orders(tmp_path / "orders.csv"), kind="orders", submit=submit_into(records),
                progress=False,
                mapping={"订单号": "properties.order_id", "手机": "traits.phone", "下单时间": "timestamp"},
                timezone=SHANGHAI, pseudonyms=TEST_PSEUDONYMS)
    expected = LOCAL.replace(second=0, tzinfo=SHANGHAI).astimezone(UTC)
    assert records[0]["timestamp"] == int(expected.timestamp() * 1000)  # 8 h before the digits read as UTC


def test_utf8_with_a_bom_stays_utf8_and_a_named_encoding_wins(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes("\ufeffemail,姓名\na@qq.com,张三\n".encode())
    assert detect_encoding(path) == "utf-8-sig"
    with open_reader(path) as reader:
        assert reader.columns == ["email", "姓名"]
    with pytest.raises(ConfigError, match="unknown encoding"):
        open_reader(path, "klingon")


def test_an_xlsx_export_imports_with_its_dates(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["客户编号", "手机", "邮箱", "注册时间"])
    sheet.append(["C1", "139 1234 5678", "Ann@QQ.com", LOCAL])
    sheet.append([None, None, None, None])  # blank rows are skipped
    sheet.append(["C2", "13912345679", None, LOCAL])
    book.save(tmp_path / "contacts.xlsx")
    records: list[dict] = []
    summary = import_file(tmp_path / "contacts.xlsx", kind="contacts", submit=submit_into(records),
                          progress=False, timezone=SHANGHAI, pseudonyms=TEST_PSEUDONYMS,
                          mapping={"客户编号": "traits.crm_id", "手机": "traits.phone",
                                   "邮箱": "traits.email", "注册时间": "timestamp"})
    assert (summary.rows, summary.accepted) == (2, 2), summary.render()
    ids = {(i["type"], i["value"]) for i in records[0]["identifiers"]}
    assert {("crm_id", "C1"), ("phone", "+8613912345678"), ("email", "ann@qq.com")} <= ids
    assert records[0]["timestamp"] == int(LOCAL.replace(tzinfo=SHANGHAI).timestamp() * 1000)
