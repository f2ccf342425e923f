import hashlib
import hmac

import pytest

from connectors.webhook.signing import compute_signature, sign, verify_signature

SECRET = "s3cret-s3cret-s3cret"
BODY = b'{"rule":"high_intent","oneid":"o-1","values":{"score":42}}'


def test_round_trip_verifies():
    header = sign(SECRET, BODY)
    assert verify_signature(SECRET, header, BODY)
    assert verify_signature(SECRET, header, BODY.decode())  # str and bytes bodies agree


def test_header_is_stripe_style_hmac_of_timestamp_dot_body():
    header = sign(SECRET, BODY, timestamp=1_700_000_000)
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert compute_signature(SECRET, 1_700_000_000, BODY) == expected


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b.replace(b"42", b"43")),  # body changed
        lambda h, b: (h, b + b" "),  # even whitespace
        lambda h, b: (h.replace("t=", "t=1"), b),  # timestamp changed
        lambda h, b: (h[:-1] + ("0" if h[-1] != "0" else "1"), b),  # signature changed
    ],
)
def test_tampering_is_detected(tamper):
    header, body = tamper(sign(SECRET, BODY, timestamp=1_700_000_000), BODY)
    assert not verify_signature(SECRET, header, body, now=1_700_000_000)


def test_wrong_secret_fails():
    assert not verify_signature("another-secret-entirely", sign(SECRET, BODY), BODY)


def test_timestamp_tolerance():
    header = sign(SECRET, BODY, timestamp=1_000_000)
    assert verify_signature(SECRET, header, BODY, now=1_000_000 + 300)
    assert verify_signature(SECRET, header, BODY, now=1_000_000 - 300)
    assert not verify_signature(SECRET, header, BODY, now=1_000_000 + 301)
    assert not verify_signature(SECRET, header, BODY, tolerance_s=10, now=1_000_011)


def test_any_of_several_v1_signatures_may_match():
    good = sign(SECRET, BODY, timestamp=5)
    old = compute_signature("retired-secret-0000", 5, BODY)
    assert verify_signature(SECRET, f"t=5,v1={old},{good.split(',')[1]}", BODY, now=5)


@pytest.mark.parametrize(
    "header", [None, "", "garbage", "t=abc,v1=00", "v1=00", "t=5", "t=5,v1", "t=5;v1=aa"]
)
def test_malformed_headers_are_invalid_not_errors(header):
    assert verify_signature(SECRET, header, BODY, now=5) is False
