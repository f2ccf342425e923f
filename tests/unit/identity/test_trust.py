"""Trust in the OneID graph, pinned through the reference resolver (checked against the Lua by
tests/integration/test_identity_reference.py): a browser key's events are untrusted; they link
identifiers, never merge two people, and give way to a trusted source that disagrees."""

from __future__ import annotations

import pytest

from identity.graph import UNTRUSTED_MERGE
from identity.reference import ReferenceGraph
from tests.conftest import TEST_PSEUDONYMS
from tests.unit.identity.test_reference import MIN, ev, oneid_of, reasons, rules


def untrusted(message_id: str, ts: int, *ids: tuple[str, str]) -> dict:
    return {**ev(message_id, ts, *ids), "trusted": False}


def trust(graph: ReferenceGraph, oneid: str) -> dict[str, bool]:
    return {f"{e.type}:{e.value}": e.trusted for e in graph.edges(oneid)}


@pytest.fixture()
def graph() -> ReferenceGraph:
    return ReferenceGraph(rules(), pseudonyms=TEST_PSEUDONYMS)


def test_an_untrusted_event_links_identifiers_marked_untrusted(graph):
    result = graph.resolve_batch([untrusted("m1", 1000, ("anonymous_id", "a1"), ("email", "e1@qq.com"))])
    [oneid] = result.oneids
    assert trust(graph, oneid) == {"anonymous_id:a1": False, "email:e1@qq.com": False}


def test_an_untrusted_event_never_merges_two_profiles_holding_trusted_identifiers(graph):
    graph.resolve_batch([ev("m1", 1000, ("user_id", "victim"), ("email", "v@qq.com")),
                         ev("m2", 1000, ("user_id", "attacker"), ("anonymous_id", "a-att"))])
    result = graph.resolve_batch([untrusted("m3", 2000, ("email", "v@qq.com"), ("anonymous_id", "a-att"))])
    assert reasons(result) == [("anonymous_id", UNTRUSTED_MERGE)] and result.merges == []
    assert graph.lookup("anonymous_id", "a-att") == oneid_of("user_id", "attacker")
    # the same event from a trusted key is refused by the rules' limit instead
    result = graph.resolve_batch([ev("m4", 3000, ("email", "v@qq.com"), ("anonymous_id", "a-att"))])
    assert reasons(result) == [("anonymous_id", "limit:user_id")]


def test_any_trusted_identifier_counts_not_only_the_person_key(graph):
    # no user_id anywhere, so no limit would refuse the merge: only trust does
    graph.resolve_batch([ev("m1", 1000, ("crm_id", "c1")), ev("m2", 1000, ("email", "e2@qq.com"))])
    result = graph.resolve_batch([untrusted("m3", 2000, ("crm_id", "c1"), ("email", "e2@qq.com"))])
    assert reasons(result) == [("email", UNTRUSTED_MERGE)] and result.merges == []
    result = graph.resolve_batch([ev("m4", 3000, ("crm_id", "c1"), ("email", "e2@qq.com"))])
    assert reasons(result) == [] and len(result.merges) == 1


def test_an_untrusted_event_may_merge_an_anonymous_visitor_into_a_known_customer(graph):
    graph.resolve_batch([ev("m1", 1000, ("user_id", "u1"), ("email", "e1@qq.com")),
                         untrusted("m2", 1000, ("anonymous_id", "a1"))])
    result = graph.resolve_batch([untrusted("m3", 2000, ("email", "e1@qq.com"), ("anonymous_id", "a1"))])
    assert reasons(result) == [] and len(result.merges) == 1
    survivor = result.oneids[0]
    assert trust(graph, survivor) == {"anonymous_id:a1": False, "email:e1@qq.com": True, "user_id:u1": True}


def test_a_trusted_source_that_disagrees_takes_an_untrusted_identifier_over(graph):
    # the attacker, logged in, types a victim's email into a form of the site (browser key) ...
    graph.resolve_batch([ev("m1", 1000, ("user_id", "attacker"), ("anonymous_id", "a-att"))])
    graph.resolve_batch([untrusted("m2", 2000, ("anonymous_id", "a-att"), ("email", "v@qq.com"))])
    attacker = oneid_of("user_id", "attacker")
    assert graph.lookup("email", "v@qq.com") == attacker
    # ... then the victim signs up on the server: its email leaves the attacker's profile
    result = graph.resolve_batch([ev("m3", 1500, ("user_id", "victim"), ("email", "v@qq.com"))])
    victim = oneid_of("user_id", "victim")
    assert reasons(result) == [] and result.oneids == [victim]
    assert [(m["from_oneid"], m["to_oneid"]) for m in result.moves] == [(attacker, victim)]
    assert trust(graph, victim) == {"email:v@qq.com": True, "user_id:victim": True}
    assert "email" not in graph.profile_identifiers(attacker)


def test_without_trust_the_first_claim_would_keep_the_email(graph):
    graph.resolve_batch([ev("m1", 1000, ("user_id", "attacker"), ("anonymous_id", "a-att")),
                         ev("m2", 2000, ("anonymous_id", "a-att"), ("email", "v@qq.com"))])
    result = graph.resolve_batch([ev("m3", 1500, ("user_id", "victim"), ("email", "v@qq.com"))])
    assert reasons(result) == [("email", "limit:user_id")] and result.moves == []


def test_a_trusted_source_that_agrees_joins_the_profile_and_trusts_the_identifier(graph):
    graph.resolve_batch([untrusted("m1", 1000, ("anonymous_id", "a1"), ("email", "e1@qq.com"))])
    result = graph.resolve_batch([ev("m2", 2000, ("user_id", "u1"), ("email", "e1@qq.com"))])
    assert result.moves == [] and result.merges == []
    assert trust(graph, result.oneids[0]) == {"anonymous_id:a1": False, "email:e1@qq.com": True,
                                              "user_id:u1": True}


def test_a_trusted_identifier_stays_trusted_when_an_untrusted_event_repeats_it(graph):
    # a server-side event of an anonymous visitor: an anonymous profile, trusted
    graph.resolve_batch([ev("m1", 1000, ("user_id", "u1"), ("email", "e1@qq.com")),
                         ev("m2", 1000, ("anonymous_id", "a1"), ("device_id", "d1"))])
    # the browser merges it (anonymous identifiers are no trusted identity); the merge rewrites
    # a1's edge with this untrusted event, and a1 stays trusted
    result = graph.resolve_batch([untrusted("m3", 2000, ("email", "e1@qq.com"), ("anonymous_id", "a1"))])
    assert len(result.merges) == 1
    assert trust(graph, result.oneids[0]) == {"anonymous_id:a1": True, "device_id:d1": True,
                                              "email:e1@qq.com": True, "user_id:u1": True}
    assert [e.event.message_id for e in graph.edges(result.oneids[0]) if e.type == "anonymous_id"] == ["m3"]


def test_an_untrusted_login_never_re_points_a_shared_device(graph):
    graph.resolve_batch([ev("m1", 1000, ("user_id", "u1"), ("device_id", "d1"))])
    result = graph.resolve_batch([untrusted("m2", 1000 + 10 * MIN, ("user_id", "u2"), ("device_id", "d1"))])
    assert reasons(result) == [("device_id", "limit:user_id")] and result.moves == []
    # the same login from a server key re-points it
    result = graph.resolve_batch([ev("m3", 1000 + 20 * MIN, ("user_id", "u2"), ("device_id", "d1"))])
    assert len(result.moves) == 1
