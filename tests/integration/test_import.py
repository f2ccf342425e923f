"""`touchstream import` on the real stack: same validation, counted rejections, no double counting."""

import csv
import re
import uuid

from tests.integration.conftest import cli, raw_records


def counts(summary: str) -> dict[str, int]:
    return {k: int(v.replace(",", "")) for k, v in re.findall(r"^  (\w+) +([\d,]+)$", summary, re.M)}


def test_contacts_csv_import_counts_rejections_and_reimport_adds_nothing(settings, tmp_path):
    marker = uuid.uuid4().hex[:8]
    path = tmp_path / f"crm-{marker}.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["crm_id", "mobile", "email", "name"])
        writer.writerow([f"C{marker}1", "139 1234 5678", "A@Example.com", "Ann"])
        writer.writerow([f"C{marker}2", "", "b@example.com", "Bo"])
        writer.writerow(["", "", "", "nobody"])  # no identifier at all: rejected, with its reason

    first = cli(settings, "import", str(path), "--kind", "contacts", "--map", "mobile=traits.phone",
                "--map", "crm_id=traits.crm_id", "--no-progress")
    assert {k: counts(first)[k] for k in ("rows", "accepted", "duplicates", "rejected")} == {
        "rows": 3, "accepted": 2, "duplicates": 0, "rejected": 1}
    assert "missing_identity" in first
    second = cli(settings, "import", str(path), "--kind", "contacts", "--map", "mobile=traits.phone",
                 "--map", "crm_id=traits.crm_id", "--no-progress")
    assert counts(second)["duplicates"] == 2 and counts(second)["accepted"] == 0

    ours = {f"C{marker}1", f"C{marker}2"}
    records = [r for r in raw_records(settings, "")
               if any(i["type"] == "crm_id" and i["value"] in ours for i in r["identifiers"])]
    assert len(records) == 2  # two good rows, imported once despite two runs
    ids = {(i["type"], i["value"]) for r in records for i in r["identifiers"]}
    assert ("phone", "+8613912345678") in ids and ("email", "a@example.com") in ids
    assert all(r["type"] == "identify" and r["source"] == "import-contacts" for r in records)


def test_a_gbk_crm_export_with_local_times_imports_through_the_cli(settings, tmp_path):
    marker = uuid.uuid4().hex[:8]
    path = tmp_path / f"crm-{marker}.csv"
    path.write_bytes(f"客户编号,手机,注册时间\nG{marker},13712345678,2026-01-05 09:30:00\n".encode("gbk"))
    out = cli(settings, "import", str(path), "--kind", "contacts", "--timezone", "Asia/Shanghai",
              "--map", "客户编号=traits.crm_id", "--map", "手机=traits.phone", "--map", "注册时间=timestamp",
              "--no-progress")
    assert counts(out)["accepted"] == 1, out
    [record] = [r for r in raw_records(settings, "")
                if any(i["type"] == "crm_id" and i["value"] == f"G{marker}" for i in r["identifiers"])]
    assert record["timestamp"] == 1_767_576_600_000  # 09:30 in Shanghai is 01:30 UTC
