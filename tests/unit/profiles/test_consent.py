"""Consent per purpose: defaults, answers from identify traits or a consent event, triggers gated."""

import textwrap

import pytest

from profiles.exceptions import RulesError
from profiles.rules import load_rules
from tests.unit.profiles.factory import T0, S, identify, track
from tests.unit.profiles.test_engine import fired, order, run

RULES = load_rules(
    textwrap.dedent("""
    triggers:
      promo: {on: "track:Order Completed", marketing: true}
      recommend: {on: "track:Order Completed", marketing: false, purpose: personalisation}
      receipt: {on: "track:Order Completed", marketing: false}
      measured: {on: "track:Order Completed", marketing: false, purpose: analytics}
"""),
    strict=True,
)


def consent_of(events: list, rules=RULES) -> dict[str, bool]:
    engine, states = run(rules, events)
    return engine.facts.consent(states["p1"])


def test_defaults_opt_in_for_marketing_and_personalisation_opt_out_for_analytics():
    expected = {"analytics": True, "marketing": False, "personalisation": False}
    assert consent_of([track("Ping", T0)]) == expected
    engine, _ = run(RULES, [order(T0)])
    assert sorted(fired(engine)) == ["measured", "receipt"]


def test_a_consent_event_answers_purposes_and_holds_from_that_event_on():
    answers = {"purposes": {"marketing": True, "personalisation": "yes"}}
    events = [track("Consent Updated", T0, properties=answers),
              order(T0 + S),
              track("Consent Updated", T0 + 2 * S, properties={"marketing": False, "analytics": "no"}),
              order(T0 + 3 * S, message_id="second")]
    engine, states = run(RULES, events)
    rules_fired = [(t["rule"], t["message_id"]) for t in engine.pending]
    assert ("promo", "second") not in rules_fired and any(r == "promo" for r, _ in rules_fired)
    assert ("recommend", "second") in rules_fired  # personalisation was not withdrawn
    assert ("measured", "second") not in rules_fired
    assert ("receipt", "second") in rules_fired  # a service message needs no consent
    assert engine.facts.consent(states["p1"]) == {"analytics": False, "marketing": False,
                                                  "personalisation": True}
    assert engine.result.suppressed_marketing == 2  # promo and measured on the second order


def test_identify_traits_answer_too_and_unclear_values_leave_the_default():
    assert consent_of([identify({"marketing_consent": "true", "analytics_consent": 0,
                                 "personalisation_consent": "maybe"}, T0)]) == {
        "analytics": False, "marketing": True, "personalisation": False}


def test_purposes_and_consent_events_are_configurable_and_checked():
    rules = load_rules(textwrap.dedent("""
        options:
          consent_purposes:
            newsletter: {trait: nl_optin}
            analytics: {trait: stats_ok, default: true}
          consent_events: ["Privacy Choices"]
        triggers:
          digest: {on: "track:Order Completed", marketing: false, purpose: newsletter}
    """), strict=True)
    choices = track("Privacy Choices", T0, properties={"newsletter": True})
    engine, states = run(rules, [choices, order(T0 + S)])
    assert fired(engine) == ["digest"]
    assert engine.facts.consent(states["p1"]) == {"newsletter": True, "analytics": True}
    with pytest.raises(RulesError, match="purpose must be one of analytics, newsletter"):
        load_rules(textwrap.dedent("""
            options: {consent_purposes: {newsletter: {trait: nl_optin}, analytics: {trait: a}}}
            triggers: {promo: {on: "track:Order Completed"}}
        """), strict=True)  # marketing: true (the default) needs a marketing purpose
    with pytest.raises(RulesError, match="consent_purposes"):
        load_rules("options: {consent_purposes: {newsletter: {trait: x, default: maybe}}}\n", strict=True)


def test_the_profile_variable_exposes_every_purpose():
    rules = load_rules(textwrap.dedent("""
        triggers:
          ok: {on: "track:Ping", marketing: false, if: profile.consent.marketing && profile.consent.analytics}
    """), strict=True)
    engine, states = run(rules, [identify({"marketing_consent": True}, T0), track("Ping", T0 + S)])
    assert fired(engine) == ["ok"]
    assert engine.snapshot(states["p1"], T0 + S)["consent"]["marketing"] is True  # the API's view
