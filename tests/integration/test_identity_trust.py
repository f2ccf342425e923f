"""Identity from public keys, on the real stack: a browser key's events are untrusted.

On Redis (graph.lua): trust marks on edges, ``untrusted_merge``, and a trusted source taking an
untrusted identifier over. End to end (collector -> raw -> worker): a browser-key identify carrying
a known customer's email cannot merge the attacker's profile into the customer's (the rejection is
on the rejections topic), while a server key's can; identifiers a browser key may not assert are
kept on the record as invalid (``not_assertable``) and counted, never a 5xx.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from identity.graph import UNTRUSTED_MERGE, IdentityGraph
from identity.rules import load_rules
from streams.topics import Topics
from tests.conftest import TEST_PSEUDONYMS
from tests.integration.conftest import TopicReader, api, cli, iso, metric, post, raw_records, wait_resolved
from touchstream.keys import BROWSER_ASSERTABLE, KeyStore
from touchstream.settings import Settings

SITE = "https://shop.example.cn"


def event(message_id: str, ts: int, *ids: tuple[str, str], trusted: bool = True) -> dict:
    return {"message_id": message_id, "timestamp": ts, "trusted": trusted,
            "identifiers": [{"type": t, "value": v} for t, v in ids]}


@pytest.fixture
def graph(redis_client, settings) -> Iterator[IdentityGraph]:
    prefix = f"{settings.redis_prefix}trust:{uuid.uuid4().hex[:8]}:"
    yield IdentityGraph(redis_client, prefix, load_rules(), pseudonyms=TEST_PSEUDONYMS)
    for key in redis_client.scan_iter(match=prefix.replace("{", "\\{") + "*", count=1000):
        redis_client.delete(key)


def test_the_graph_marks_untrusted_links_and_refuses_an_untrusted_merge(graph) -> None:
    graph.resolve_batch([event("m1", 1000, ("user_id", "victim"), ("email", "v@qq.com")),
                         event("m2", 1000, ("user_id", "attacker"), ("anonymous_id", "a-att"))])
    out = graph.resolve_batch([event("m3", 2000, ("email", "v@qq.com"), ("anonymous_id", "a-att"),
                                     ("phone", "+8613900000009"), trusted=False)])
    victim, attacker = graph.lookup("user_id", "victim"), graph.lookup("user_id", "attacker")
    assert out.merges == [] and [r["reason"] for r in out.rejections] == [UNTRUSTED_MERGE]
    assert out.rejections[0]["type"] == "anonymous_id" and out.oneids == [victim]
    # the new phone still links, untrusted, into the profile the event resolved to
    marks = {(e.type, e.value): e.trusted for e in graph.edges(victim)}
    assert marks == {("user_id", "victim"): True, ("email", "v@qq.com"): True,
                     ("phone", "+8613900000009"): False}
    assert graph.lookup("anonymous_id", "a-att") == attacker
    assert graph.check_consistency() == []


def test_a_trusted_source_that_disagrees_wins_on_redis(graph) -> None:
    graph.resolve_batch([event("m1", 1000, ("user_id", "attacker"), ("anonymous_id", "a-att"))])
    graph.resolve_batch([event("m2", 2000, ("anonymous_id", "a-att"), ("email", "v@qq.com"), trusted=False)])
    attacker = graph.lookup("user_id", "attacker")
    assert graph.lookup("email", "v@qq.com") == attacker
    out = graph.resolve_batch([event("m3", 1500, ("user_id", "victim"), ("email", "v@qq.com"))])
    victim = graph.lookup("user_id", "victim")
    assert out.rejections == []
    assert [(m["from_oneid"], m["to_oneid"]) for m in out.moves] == [(attacker, victim)]
    assert {(e.type, e.trusted) for e in graph.edges(victim)} == {("user_id", True), ("email", True)}
    assert graph.check_consistency() == []


def test_keys_remember_trust_and_what_they_may_assert(redis_client, settings) -> None:
    store = KeyStore(redis_client, f"{settings.redis_prefix}trustkeys:{uuid.uuid4().hex[:6]}:")
    server = store.create("write", "backend")
    browser = store.create("write", "web", origins=(SITE,))
    crm_site = store.create("write", "portal", origins=(SITE,), trusted=True, assertable=("crm_id", "email"))
    keys = {k.key_id: k for k in store.list()}
    by_name = {k.name: k for k in keys.values()}
    assert by_name["backend"].trusted and by_name["backend"].assertable is None
    assert not by_name["web"].trusted and by_name["web"].assertable == BROWSER_ASSERTABLE
    assert by_name["portal"].trusted and by_name["portal"].assertable == ("crm_id", "email")
    assert all(k.startswith("tsk_") for k in (server, browser, crm_site))
    with pytest.raises(ValueError):
        store.create("read", "analyst", trusted=True)


# ---- end to end ----


def browser_post(base: str, path: str, body: dict, key: str) -> tuple[int, dict]:
    """What analytics.js sends: the key in a text/plain body, from a page of SITE."""
    data = json.dumps({**body, "writeKey": key}).encode()
    request = urllib.request.Request(base + path, data=data, method="POST",
                                     headers={"Content-Type": "text/plain", "Origin": SITE})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def browser_key(settings: Settings) -> str:
    return cli(settings, "keys", "create", "--scope", "write", "--name", "shop-web", "--origin", SITE,
               "--rate", "100000", "--burst", "100000").strip()


@pytest.fixture(scope="module")
def resolved(settings: Settings, worker) -> Iterator[TopicReader]:
    reader = TopicReader(settings, Topics.of(settings).resolved, "event")
    yield reader
    reader.close()


@pytest.fixture(scope="module")
def rejections(settings: Settings, worker) -> Iterator[TopicReader]:
    reader = TopicReader(settings, Topics.of(settings).rejections, "identity_rejection")
    yield reader
    reader.close()


def test_a_browser_identify_cannot_merge_an_attacker_into_a_known_customer_a_server_key_can(
        collector, write_key, browser_key, read_key, resolved, rejections) -> None:
    m = uuid.uuid4().hex[:8]
    now = int(time.time() * 1000) - 60_000
    email = f"customer.{m}@163.com"
    server_events = [
        # the known customer, from the backend
        ("/v1/identify", {"userId": f"cust-{m}", "traits": {"email": email}}),
        # the attacker logged in once (the server saw their cookie with their own user_id)
        ("/v1/identify", {"userId": f"att-{m}", "anonymousId": f"a-att-{m}"}),
        # a store customer known only by a phone, whose browser cookie the backend saw too
        ("/v1/track", {"anonymousId": f"a-store-{m}", "event": "Order Completed",
                       "context": {"traits": {"phone": f"+86139{uuid.uuid4().int % 10**8:08d}"}}}),
    ]
    sent = []
    for i, (path, body) in enumerate(server_events):
        body = {**body, "messageId": f"tr-{m}-{i}", "timestamp": iso(now + i * 1000)}
        assert post(collector + path, body, key=write_key)[0] == 200
        sent.append(body["messageId"])
    first = wait_resolved(resolved, set(sent))
    customer, attacker = first[sent[0]]["oneid"], first[sent[1]]["oneid"]
    assert customer != attacker

    # the attacker's browser claims the customer's email
    attack = {"type": "identify", "anonymousId": f"a-att-{m}", "traits": {"email": email},
              "messageId": f"tr-{m}-attack", "timestamp": iso(now + 10_000)}
    status, answer = browser_post(collector, "/v1/i", attack, browser_key)
    assert status == 200, answer
    found = wait_resolved(resolved, {attack["messageId"]})
    assert found[attack["messageId"]]["oneid"] == customer  # the email's profile, without the cookie
    refused = rejections.until(lambda rs: any(r["message_id"] == attack["messageId"] for r in rs))
    assert [(r["type"], r["reason"]) for r in refused if r["message_id"] == attack["messageId"]] == [
        ("anonymous_id", UNTRUSTED_MERGE)]
    status, profile = api(collector, "GET", f"/v1/identities/anonymous_id/a-att-{m}", read_key)
    assert status == 200 and profile["oneid"] == attacker, profile

    # the same claim from the backend about the store customer's cookie merges the two
    link = {"anonymousId": f"a-store-{m}", "traits": {"email": email}, "messageId": f"tr-{m}-server",
            "timestamp": iso(now + 20_000)}
    assert post(collector + "/v1/identify", link, key=write_key)[0] == 200
    wait_resolved(resolved, {link["messageId"]})
    status, profile = api(collector, "GET", f"/v1/identities/anonymous_id/a-store-{m}", read_key)
    assert status == 200 and profile["oneid"] == customer, profile


def test_a_browser_key_cannot_assert_a_crm_id_it_is_kept_as_invalid_and_counted(
        settings, collector, browser_key) -> None:
    m = uuid.uuid4().hex[:8]
    counted = "touchstream_invalid_identifiers_total"
    before = metric(collector, counted, type="crm_id", reason="not_assertable")
    body = {"type": "track", "event": "Viewed", "anonymousId": f"a-{m}", "messageId": f"na-{m}",
            "context": {"externalIds": [{"id": f"c-{m}", "type": "crm_id", "collection": "users"}]}}
    status, answer = browser_post(collector, "/v1/t", body, browser_key)
    assert status == 200, answer
    [record] = raw_records(settings, f"na-{m}", expect=1)
    assert record["trusted"] is False
    assert {(i["type"], i["value"]) for i in record["identifiers"]} == {("anonymous_id", f"a-{m}")}
    assert [(i["type"], i["reason"]) for i in record["invalid_identifiers"]] == [("crm_id", "not_assertable")]
    after = metric(collector, counted, type="crm_id", reason="not_assertable")
    assert after == before + 1


def test_keys_create_sets_trust_and_assertable_types(settings, redis_client, collector) -> None:
    m = uuid.uuid4().hex[:8]
    key = cli(settings, "keys", "create", "--scope", "write", "--name", f"portal-{m}", "--origin", SITE,
              "--trusted", "--assert", "crm_id", "--assert", "anonymous_id").strip()
    [stored] = [k for k in KeyStore(redis_client, settings.redis_prefix).list() if k.name == f"portal-{m}"]
    assert stored.trusted and stored.assertable == ("anonymous_id", "crm_id")
    body = {"type": "track", "event": "Viewed", "anonymousId": f"a-{m}", "messageId": f"pt-{m}",
            "traits": {"email": f"p.{m}@163.com"},
            "context": {"externalIds": [{"id": f"c-{m}", "type": "crm_id", "collection": "users"}]}}
    status, answer = browser_post(collector, "/v1/t", body, key)
    assert status == 200, answer
    [record] = raw_records(settings, f"pt-{m}", expect=1)
    assert record["trusted"] is True
    assert {i["type"] for i in record["identifiers"]} == {"anonymous_id", "crm_id"}
