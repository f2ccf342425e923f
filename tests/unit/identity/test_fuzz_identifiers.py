"""Property tests of the one normaliser: whatever a client sends, it answers a bounded, valid
UTF-8 string or InvalidIdentifier, never another exception (a crash here is a 5xx at the edge or
a stalled importer). Each ``@example`` is a case hypothesis once found; it stays as a regression.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from identity.identifiers import (
    IDENTIFIER_REASONS,
    MAX_INVALID_VALUE_CHARS,
    MAX_VALUE_CHARS,
    InvalidIdentifier,
    extract_identifiers,
    normalise,
)

TYPES = ("user_id", "anonymous_id", "email", "phone", "device_id", "crm_id", "wechat_openid", "Bad-Type", "")

#: Lone surrogates, unicode digits, full-width and case-expanding letters, controls, NUL.
awkward_text = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec=None, categories=("Cs", "Nd", "Lu", "Ll", "Zs", "Cc", "Cf"))),
    st.sampled_from(["\ud800", "a\udfffb",
                     "\u0661\u0663\u0669\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668",
                     "+\uff18\uff16 \uff11\uff13\uff19 \uff11\uff12\uff13\uff14 \uff15\uff16\uff17\uff18",
                     "İ" * 200 + "@qq.com", "\x00", "\u200b", "ﬀ@qq.com", "x" * 10_000]),
    st.builds(lambda n: "9" * n, st.integers(0, 5000)),
)
# built, not literal: hypothesis reprs its strategies, and repr() of a 4,300+ digit int raises
huge_ints = st.one_of(
    st.integers(),
    st.builds(lambda sign, k, n: sign * (10**k + n), st.sampled_from([1, -1]), st.integers(0, 6000),
              st.integers(-5, 5)),
)
json_leaves = st.one_of(st.none(), st.booleans(), huge_ints, st.floats(allow_nan=True, allow_infinity=True),
                        awkward_text)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(awkward_text, inner, max_size=4)),
    max_leaves=12,
)


def deeply_nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def assert_clean(text: str, limit: int) -> None:
    assert isinstance(text, str)
    text.encode("utf-8")  # raises on a lone surrogate
    assert len(text) <= limit


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(type_=st.sampled_from(TYPES), value=json_values)
@example(type_="user_id", value="\ud800")  # found: a lone surrogate came back as the identifier
@example(type_="anonymous_id", value="a\udfffb")
@example(type_="user_id", value=10**5000)  # found: str() of a huge int raised ValueError
@example(type_="phone", value=-(10**5000))
@example(type_="email", value="İ" * 30 + "@" + "a" * 60 + ".qq.com")  # lower() makes "İ" two characters
@example(type_="user_id", value=float("nan"))
@example(type_="user_id", value=float("-inf"))
@example(type_="device_id", value=1e308)
@example(type_="phone", value="\u0661\u0663\u0669\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668")
@example(type_="user_id", value=deeply_nested(5000))
def test_normalise_returns_clean_text_or_invalid_identifier(type_: str, value: object) -> None:
    try:
        out = normalise(type_, value)
    except InvalidIdentifier as exc:
        assert exc.reason in IDENTIFIER_REASONS
        return
    assert_clean(out, MAX_VALUE_CHARS)
    assert out == out.strip() and out


def _message(values: dict) -> dict:
    return {
        "type": "track",
        "userId": values.get("u"),
        "anonymousId": values.get("a"),
        "traits": {"email": values.get("e"), "phone": values.get("p"), "crm_id": values.get("c")},
        "context": {
            "traits": values.get("ct"),
            "device": {"id": values.get("d")},
            "externalIds": values.get("x"),
        },
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.dictionaries(st.sampled_from(["u", "a", "e", "p", "c", "ct", "d", "x"]), json_values),
    external=st.lists(st.dictionaries(st.sampled_from(["type", "id", "collection"]), json_values),
                      max_size=5),
)
@example(values={"u": "\ud800", "a": 10**5000}, external=[])  # found: both crashed
@example(values={"u": deeply_nested(5000)}, external=[])  # found: json.dumps hit the recursion limit
@example(values={}, external=[{"type": "\ud800x", "id": "\udfff"}])  # found: a surrogate in the shown type
@example(values={}, external=[{"type": "weird type", "id": {"a": float("nan"), "\ud800": [10**5000]}}])
def test_extract_identifiers_never_raises_and_keeps_records_clean(values: dict, external: list) -> None:
    message = _message(values)
    message["context"]["externalIds"] = external + ([values["x"]] if "x" in values else [])
    valid, invalid = extract_identifiers(message)
    for ident in valid:
        assert_clean(ident["type"], 40)
        assert_clean(ident["value"], MAX_VALUE_CHARS)
    for bad in invalid:
        assert_clean(bad["type"], 40)
        assert_clean(bad["value"], MAX_INVALID_VALUE_CHARS)
        assert bad["reason"] in IDENTIFIER_REASONS
    # what is kept on the event must survive JSON/Avro encoding
    json.dumps([valid, invalid], ensure_ascii=False).encode("utf-8")


def test_a_huge_int_is_too_long_not_a_crash() -> None:
    for value in (10**5000, -(10**5000), 10**300):
        try:
            normalise("user_id", value)
        except InvalidIdentifier as exc:
            assert exc.reason == "too_long"
        else:
            raise AssertionError("a 300+ digit number is no identifier")
    assert normalise("user_id", 10**255) == "1" + "0" * 255


def test_a_lone_surrogate_is_not_utf8() -> None:
    for value in ("\ud800", "user-\udc00-1"):
        try:
            normalise("user_id", value)
        except InvalidIdentifier as exc:
            assert exc.reason == "not_utf8"
        else:
            raise AssertionError("a lone surrogate cannot be stored or encoded")
    assert normalise("user_id", "ok\u00e9") == "ok\u00e9"
