"""Touch classification: the shipped rules on the events they are meant for, custom rules, visits."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from analytics.attribution.journeys import CONVERSIONS, TOUCHES, build_journeys
from analytics.channels import load_channel_rules, parse_channel_rules
from analytics.touches import Conversion
from schemas.testing import T0, event_record
from tests.unit.analytics import reference
from tests.unit.analytics.conftest import Lake
from touchstream.errors import ConfigError

SITE = "https://shop.example.cn"
MIN = 60_000


def page(url: str, referrer: str = "", *, oneid: str = "p", **kw: Any) -> dict[str, Any]:
    props = {"url": url, **({"referrer": referrer} if referrer else {})}
    return event_record("page", T0, oneid=oneid, properties=props, **kw)


CASES = [
    (page(f"{SITE}/?utm_source=baidu&utm_medium=cpc", "https://www.baidu.com/s"), "paid_search"),
    (page(f"{SITE}/?utm_medium=CPC"), "paid_search"),  # values compare lower-case
    (page(f"{SITE}/?utm_source=weixin&utm_medium=article"), "wechat"),
    (event_record("page", T0, oneid="p", properties={},
                  context={"campaign": {"source": "esp", "medium": "email", "name": "n"},
                           "page": {"url": f"{SITE}/promo"}}), "email"),
    (page(f"{SITE}/?utm_medium=social"), "social"),
    (page(f"{SITE}/?utm_medium=display&utm_source=partner"), "other"),
    (page(f"{SITE}/?utm_source=partner"), "other"),
    (page(f"{SITE}/p", f"{SITE}/"), None),  # inside the own site
    (page(f"{SITE}/p", "https://user:pw@SHOP.example.cn:443/"), None),  # same host, any spelling
    (event_record("track", T0, oneid="p", event="Webinar Attended"), "webinar"),
    (event_record("track", T0, oneid="p", event="Booth Visited"), "offline_event"),
    (event_record("track", T0, oneid="p", event="Email Link Clicked"), "email"),
    (event_record("identify", T0, oneid="p", source="import-contacts"), "crm_import"),
    (event_record("track", T0, oneid="p", event="Viewed", context={"channel": "wechat_miniprogram"}),
     "wechat"),
    (page(f"{SITE}/", "https://mp.weixin.qq.com/s/abc"), "wechat"),
    (page(f"{SITE}/", "https://mail.qq.com/"), "email"),
    (page(f"{SITE}/", "https://www.google.co.uk/"), "organic_search"),
    (page(f"{SITE}/", "https://m.baidu.com/s?wd=cdp"), "organic_search"),
    (page(f"{SITE}/", "https://notbaidu.com/"), "referral"),  # a subdomain, not a suffix, matches
    (page(f"{SITE}/", "https://weibo.com/u/1"), "social"),
    (event_record("page", T0, oneid="p", properties={},
                  context={"page": {"url": f"{SITE}/", "referrer": "https://www.zhihu.com/q"}}), "social"),
    (page(f"{SITE}/"), "direct"),
    (event_record("track", T0, oneid="p", event="Application Opened"), "direct"),
    (event_record("track", T0, oneid="p", event="Product Viewed"), None),
    (event_record("screen", T0, oneid="p", name="Home"), None),
]


@pytest.mark.parametrize(("event", "channel"), CASES)
def test_shipped_rules_classify_each_channel(make_lake: Lake, event: dict[str, Any],
                                             channel: str | None) -> None:
    con = make_lake([event])
    build_journeys(con, Conversion(), load_channel_rules())
    assert con.sql(f"SELECT channel FROM {TOUCHES}").fetchall() == ([(channel,)] if channel else [])


TRICKY = [  # URLs as pages send them: the quick path for plain events must read them as the full one
    (page(f"{SITE}/", "www.baidu.com/s"), "direct"),  # no scheme: no host to read
    (page(f"{SITE}/", "HTTPS://WWW.BAIDU.COM:8443/s?wd=x"), "organic_search"),  # upper case, a port
    (page(f"{SITE}/", "https://Bücher.example/"), "referral"),  # a host in another script
    (page(f"{SITE}/", "not a url"), "direct"),
    (page("shop.example.cn/?utm_medium=cpc"), "paid_search"),  # parameters without a scheme
    (page(f"{SITE}/?UTM_MEDIUM=cpc"), "direct"),  # parameter names are case-sensitive
    (page(f"{SITE}/?x=1&utm_medium=e%6Dail"), "email"),  # decoded
    (page(f"{SITE}/?utm_medium="), "direct"),  # present but empty
    (page(f"{SITE}/utm_guide"), "direct"),  # "utm_" in the path is no parameter
    (page(""), "direct"),
    (event_record("page", T0, oneid="p", properties={"url": f"{SITE}/"},  # the properties' URL wins
                  context={"page": {"url": f"{SITE}/?utm_medium=cpc"}}), "direct"),
    (event_record("track", T0, oneid="p", event="Viewed", context={"channel": "Store"}), "offline_event"),
    (event_record("track", T0, oneid="p", event="Viewed", context={"campaign": {"medium": ""}}), None),
]


@pytest.mark.parametrize(("event", "channel"), TRICKY)
def test_tricky_urls_and_empty_values_classify_as_documented(make_lake: Lake, event: dict[str, Any],
                                                             channel: str | None) -> None:
    con = make_lake([event])
    build_journeys(con, Conversion(), load_channel_rules())
    assert con.sql(f"SELECT channel FROM {TOUCHES}").fetchall() == ([(channel,)] if channel else [])


def test_campaigns_come_from_context_then_url_then_properties(make_lake: Lake) -> None:
    con = make_lake([
        event_record("page", T0, oneid="a",
                     properties={"url": f"{SITE}/?utm_medium=cpc&utm_campaign=%E5%8F%8C+11"},
                     context={"campaign": {"medium": "cpc", "name": "from context"}}),
        page(f"{SITE}/?utm_medium=cpc&utm_campaign=%E5%8F%8C+11", oneid="b"),
        event_record("track", T0, oneid="c", event="Webinar Attended", properties={"campaign": "cdp 101"}),
        page(f"{SITE}/", oneid="d"),
    ])
    build_journeys(con, Conversion(), load_channel_rules())
    rows = con.sql(f"SELECT person, campaign FROM {TOUCHES} ORDER BY person").fetchall()
    assert rows == [("a", "from context"), ("b", "双 11"), ("c", "cdp 101"), ("d", None)]


def test_a_visit_is_one_touch_until_the_gap_or_another_channel(make_lake: Lake) -> None:
    direct = [page(f"{SITE}/", message_id=f"d{i}") for i in range(3)]
    for i, minutes in enumerate((0, 20, 45)):  # 20 min apart: one visit; 25 more: still (gap from the last)
        direct[i]["timestamp"] = T0 + minutes * MIN
    later = page(f"{SITE}/", message_id="d3")
    later["timestamp"] = T0 + 120 * MIN
    social = page(f"{SITE}/", "https://weibo.com/", message_id="s")
    social["timestamp"] = T0 + 130 * MIN
    again = page(f"{SITE}/", message_id="d4")
    again["timestamp"] = T0 + 131 * MIN
    con = make_lake([*direct, later, social, again])
    build_journeys(con, Conversion(), load_channel_rules())
    assert con.sql(f"SELECT message_id FROM {TOUCHES} ORDER BY ts").fetchall() == [
        ("d0",), ("d3",), ("s",), ("d4",)]


def test_conversions_are_never_touches_and_carry_their_revenue(make_lake: Lake) -> None:
    orders = [event_record("track", T0 + i, oneid="p", event="Order Completed", context={"channel": "wechat"},
                           properties=props, message_id=f"o{i}")
              for i, props in enumerate([{"revenue": 12.5}, {"revenue": "7"}, {"total": 3},
                                         {"revenue": "n/a"}, {"revenue": "Infinity", "total": 2}, {},
                                         {"order": {"total": 4}}])]
    con = make_lake(orders)
    build_journeys(con, Conversion(revenue_fields=("revenue", "total", "order.total")), load_channel_rules())
    assert con.sql(f"SELECT count(*) FROM {TOUCHES}").fetchall() == [(0,)]
    revenue = [r for (r,) in con.sql(f"SELECT revenue FROM {CONVERSIONS} ORDER BY conv").fetchall()]
    assert revenue == [12.5, 7.0, 3.0, 0.0, 2.0, 0.0, 4.0]


def test_custom_rules_own_hosts_and_channels(make_lake: Lake, tmp_path: Path) -> None:
    rules_file = tmp_path / "channels.yaml"
    rules_file.write_text(
        "session_gap: 1m\n"
        "internal_hosts: [example.cn]\n"
        "rules:\n"
        "  - {channel: none, referrer: [internal]}\n"
        "  - {channel: partners, referrer: ['*.partner.*', partner.cn]}\n"
        "  - {channel: kol, utm_source: ['kol-*']}\n")
    con = make_lake([
        page(f"{SITE}/", "https://blog.example.cn/", message_id="own", oneid="a"),
        page(f"{SITE}/", "https://ads.partner.com/", message_id="p1", oneid="b"),
        page(f"{SITE}/", "https://partner.cn/", message_id="p2", oneid="c"),
        page(f"{SITE}/?utm_source=KOL-li", message_id="k", oneid="d"),
        page(f"{SITE}/", "https://weibo.com/", message_id="other", oneid="e"),
    ])
    build_journeys(con, Conversion(), load_channel_rules(rules_file))
    rows = con.sql(f"SELECT message_id, channel FROM {TOUCHES} ORDER BY message_id").fetchall()
    assert rows == [("k", "kol"), ("p1", "partners"), ("p2", "partners")]


@pytest.mark.parametrize(("text", "key"), [
    ("rules: [{channel: x, colour: [red]}]", "rules[0].colour"),
    ("rules: [{channel: 'Bad Name'}]", "rules[0].channel"),
    ("rules: [{channel: x, event: []}]", "rules[0].event"),
    ("rules: [{channel: x, event: [{a: 1}]}]", "rules[0].event[0]"),
    ("session_gap: soon\nrules: []", "session_gap"),
    ("rules: {}", "rules"),
    ("version: 2\nrules: []", "version"),
    ("surprise: 1\nrules: []", "surprise"),
])
def test_a_wrong_rules_file_names_the_key(text: str, key: str) -> None:
    import yaml

    with pytest.raises(ConfigError, match=rf"channel rules x\.yaml: {__import__('re').escape(key)}:"):
        parse_channel_rules(yaml.safe_load(text), "x.yaml")


def test_the_shipped_rules_name_every_channel_of_the_issue() -> None:
    rules = load_channel_rules()
    assert {"paid_search", "organic_search", "social", "email", "wechat", "direct", "webinar",
            "offline_event", "crm_import"} <= set(rules.channels)
    assert rules.session_gap_ms == 30 * MIN


def _glob(pattern: str, value: str) -> bool:
    """The documented wildcards, as the rules' regular expressions read them: ``*`` any run and
    ``?`` one character, neither across a line break."""
    return re.fullmatch("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern),
                        value) is not None


@pytest.mark.parametrize("feature", ["source", "referrer"])
@pytest.mark.parametrize("patterns", [["import-*"], ["?*"], ["*"], ["a?c", "x*y"], ["*.partner.*", "kol-*"],
                                      ["", "b*"]])
def test_a_wildcard_condition_matches_exactly_its_patterns(feature: str, patterns: list[str]) -> None:
    # Each regular expression sits behind a cheap test (a prefix, or a value at all): the test
    # must never turn a match away, on empty values, line breaks or other scripts alike.
    values = ["", "import-", "import-x", "x-import-", "import-\n", "\n", "a", "abc", "a\nc", "xy", "x\ny",
              "kol-李", "李", "ads.partner.com", "partner.com", "b", "ba", ".b", "www.import-x", "x.abc"]
    rules = parse_channel_rules({"rules": [{"channel": "hit", feature: patterns}]})
    features = dict.fromkeys(("utm_source", "utm_medium", "event", "type", "source", "context_channel",
                              "referrer", "page_host"), "v")
    sql = f"SELECT v, {rules.sql_case(features)} FROM unnest($values) t(v)"
    got = dict(duckdb.connect().execute(sql, {"values": values}).fetchall())
    for value in values:
        hit = any(_glob(p, value) or (feature == "referrer" and _glob("*." + p, value)) for p in patterns)
        assert got[value] == (0 if hit else None), value


ODD_RULES = {"internal_hosts": ["blog.shop.cn"], "rules": [
    {"channel": "anything", "utm_medium": ["*"], "event": ["x"]},  # an empty medium matches "*"
    {"channel": "blank", "utm_source": [""], "event": ["y"]},      # "" is an absent value
    {"channel": "none", "referrer": ["internal"]},
    {"channel": "no_host", "referrer": ["none"], "type": ["screen"]},
    {"channel": "any_host", "referrer": ["*"], "event": ["z"]},
    {"channel": "partner", "referrer": ["partner.cn"]},
    {"channel": "paid", "utm_medium": ["cpc"]},
    {"channel": "wechat", "context_channel": ["wechat"]},
    {"channel": "direct", "type": ["page"]},
]}


def test_the_compiled_rules_agree_with_a_plain_reading_on_empty_and_set_features() -> None:
    # events without a campaign, referrer or channel take a shortened chain: it must name what
    # the whole chain names, for every mix of empty and set features
    rules = parse_channel_rules(ODD_RULES)
    columns = ("utm_source", "utm_medium", "referrer", "context_channel", "event", "type")
    values = [["", "x"], ["", "cpc"], ["", "www.partner.cn", "shop.cn", "blog.shop.cn"], ["", "wechat"],
              ["", "x", "y", "z"], ["page", "screen", "track"]]
    grid = [dict(zip(columns, row, strict=True)) for row in itertools.product(*values)]
    con = duckdb.connect()
    con.register("grid", pa.table({name: [row[name] for row in grid] for name in columns}))
    features = {**{name: name for name in columns}, "source": "'web'", "page_host": "'shop.cn'"}
    got = con.execute(f"SELECT {rules.sql_case(features)} FROM grid").fetchall()
    for row, (index,) in zip(grid, got, strict=True):
        expected = reference.classify(rules, {**row, "source": "web", "page_host": "shop.cn"})
        assert (None if index is None else rules.channels[index]) == expected, row
