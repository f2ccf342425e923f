import os
import textwrap

import pytest

from profiles.exceptions import RulesError
from profiles.rules import DEFAULT_RULES_PATH, RuleSet, load_rules, load_rules_file, storage_id

GOOD = textwrap.dedent("""
    aggregates:
      pricing_views_7d: {on: page, where: 'event.path.startsWith("/pricing")', op: count, window: 7d}
      orders_90d: {on: "track:Order Completed", op: count, window: 90d}
    tags:
      high_intent: {on: page, if: profile.agg.pricing_views_7d >= 3, ttl: 14d}
    triggers:
      welcome: {on: identify, marketing: true}
""")


def test_default_rules_load_without_issues():
    rules = load_rules_file(DEFAULT_RULES_PATH, strict=True)
    assert rules.issues == []
    assert {"pricing_views_7d", "orders_90d", "revenue_365d"} <= set(rules.aggregates)
    assert {"high_intent", "price_sensitive", "interested_in_feature"} <= {t.rule for t in rules.tags}
    assert rules.tier is not None and [name for name, _ in rules.tier.levels] == ["A", "B", "C"]
    assert rules.tier.levels[0][1] == 100_000 and rules.tier.inactive_after_ms == 90 * 86_400_000
    kinds = {t.name: t.kind for t in rules.triggers.values()}
    assert kinds["pricing_dwell"] == "dwell" and rules.triggers["pricing_dwell"].params.above_ms == 180_000
    assert kinds["post_purchase_7d"] == kinds["post_purchase_30d"] == "delayed"
    assert kinds["tier_upgraded"] == "tier_upgrade" and kinds["tier_downgraded"] == "tier_downgrade"
    assert rules.options.consent_trait == "marketing_consent"
    assert rules.options.allowed_lateness_ms == 3_600_000


def test_on_is_a_key_not_a_yaml_boolean():
    rules = load_rules(GOOD, strict=True)
    assert rules.aggregates["orders_90d"].on == (("track", "Order Completed"),)


def test_a_bad_rule_is_rejected_by_name_and_the_others_load():
    text = GOOD + (
        "  broken_syntax: {on: page, if: 'profile.agg.pricing_views_7d >=', marketing: false}\n"
        "  unknown_aggregate: {on: page, if: profile.agg.nope > 1}\n"
        "  typo_key: {on: page, marketting: true}\n"
    )
    rules = load_rules(text)
    rejected = {i.rule: i.error for i in rules.issues}
    assert set(rejected) == {"triggers.broken_syntax", "triggers.unknown_aggregate", "triggers.typo_key"}
    assert "syntax" in rejected["triggers.broken_syntax"]
    assert "nope" in rejected["triggers.unknown_aggregate"]
    assert "marketting" in rejected["triggers.typo_key"]
    assert set(rules.triggers) == {"welcome"}
    assert set(rules.aggregates) == {"pricing_views_7d", "orders_90d"}


def test_strict_loading_raises_with_every_issue():
    with pytest.raises(RulesError) as err:
        load_rules(GOOD.replace("op: count, window: 90d", "op: average, window: 90d"), strict=True)
    assert [i.rule for i in err.value.issues] == ["aggregates.orders_90d"]
    assert "aggregates.orders_90d" in str(err.value)


def test_a_rule_depending_on_a_rejected_aggregate_is_rejected_too():
    rules = load_rules(GOOD.replace("op: count, window: 7d", "op: count, window: soon"))
    assert {i.rule for i in rules.issues} == {"aggregates.pricing_views_7d", "tags.high_intent"}


@pytest.mark.parametrize("text", ["a: [unclosed", "- just\n- a list\n", "version: 2\n"])
def test_an_unusable_file_raises(text):
    with pytest.raises(RulesError):
        load_rules(text)


def test_index_selects_only_rules_that_can_fire():
    rules = load_rules_file(DEFAULT_RULES_PATH)
    order = rules.candidates("track", "Order Completed")
    assert {a.name for a in order.aggregates} == {
        "orders_90d",
        "revenue_365d",
        "first_order_at",
        "last_order_id",
    }
    assert {t.name for t in order.triggers} == {"post_purchase_7d", "post_purchase_30d"}
    assert order.tags == () and order.of_kind("dwell") == ()
    page = rules.candidates("page", None)
    assert "revenue_365d" not in {a.name for a in page.aggregates}
    assert [d.name for d in page.of_kind("dwell")] == ["pricing_dwell"]
    assert rules.candidates("track", "Something Else").empty
    assert rules.candidates("alias", None).empty
    assert rules.candidates("track", "Order Completed") is order  # computed once


def test_star_and_type_wide_selectors():
    rules = load_rules(
        textwrap.dedent("""
        aggregates:
          everything: {on: "*", op: count}
          any_track: {on: track, op: count}
    """),
        strict=True,
    )
    assert {a.name for a in rules.candidates("identify", None).aggregates} == {"everything"}
    assert {a.name for a in rules.candidates("track", "X").aggregates} == {"everything", "any_track"}


def test_candidates_know_which_members_to_build():
    rules = load_rules_file(DEFAULT_RULES_PATH)
    order = rules.candidates("track", "Order Completed")
    assert order.event_needs["properties"] >= {"revenue", "total", "order_id"}
    assert order.memo_members is None  # properties differ per order: no memo
    page = rules.candidates("page", None)
    assert page.memo_members == ("path", "segments", "type")


def test_storage_ids_are_short_and_stable():
    assert storage_id("pricing_views_7d") == storage_id("pricing_views_7d")
    assert len(storage_id("pricing_views_7d")) == 4
    rules = load_rules_file(DEFAULT_RULES_PATH)
    ids = [a.sid for a in rules.aggregates.values()]
    assert len(set(ids)) == len(ids)


def test_colliding_storage_ids_are_rejected():
    rules = load_rules(
        textwrap.dedent("""
        aggregates:
          a: {on: page, op: count, id: same}
          b: {on: page, op: count, id: same}
    """)
    )
    assert [i.rule for i in rules.issues] == ["aggregates.b"]


def write(path, text, bump):
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


def test_ruleset_reloads_when_the_file_changes(tmp_path):
    path = tmp_path / "rules.yaml"
    write(path, GOOD, 0)
    ruleset = RuleSet(path, check_every_s=0)
    assert set(ruleset.current().triggers) == {"welcome"}
    write(path, GOOD + "  second: {on: page, marketing: false}\n", 1)
    rules = ruleset.current()
    assert set(rules.triggers) == {"welcome", "second"} and ruleset.version == 2


def test_a_broken_file_keeps_the_rules_in_force(tmp_path):
    path = tmp_path / "rules.yaml"
    write(path, GOOD, 0)
    ruleset = RuleSet(path, check_every_s=0)
    before = ruleset.current()
    write(path, "aggregates: [oops", 1)
    assert ruleset.current() is before
    assert "not valid YAML" in ruleset.last_reload_error
    path.unlink()
    assert ruleset.current() is before


def test_a_rejected_rule_keeps_its_previous_version_on_reload(tmp_path):
    path = tmp_path / "rules.yaml"
    write(path, GOOD, 0)
    ruleset = RuleSet(path, check_every_s=0)
    edited = GOOD.replace("pricing_views_7d >= 3", "pricing_views_7d >=") + "  second: {on: page}\n"
    write(path, edited, 1)
    rules = ruleset.current()
    assert "second" in rules.triggers  # the good edit took effect
    assert rules.tags[0].when.source == "profile.agg.pricing_views_7d >= 3"  # the bad one did not
    assert any(i.rule == "tags.high_intent" and "previous version kept" in i.error for i in rules.issues)


def test_first_load_of_a_broken_file_raises(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("{{{")
    with pytest.raises(RulesError):
        RuleSet(path)
    with pytest.raises(RulesError, match="cannot read"):
        RuleSet(tmp_path / "missing.yaml")


def test_trigger_kinds_check_what_they_may_read():
    rules = load_rules(
        textwrap.dedent("""
        aggregates:
          n: {on: page, op: count}
        triggers:
          dwell_reads_event: {kind: dwell, above: 10s, if: 'event.path == "/x"'}
          tier_without_tier: {kind: tier_upgrade}
          delayed_without_delay: {kind: delayed, on: page}
          fine: {kind: dwell, above: 10s, where: 'event.path == "/x"', if: profile.agg.n > 1}
    """)
    )
    rejected = {i.rule for i in rules.issues}
    assert rejected == {
        "triggers.dwell_reads_event",
        "triggers.tier_without_tier",
        "triggers.delayed_without_delay",
    }
    assert "fine" in rules.triggers
