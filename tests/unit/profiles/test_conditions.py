import pytest

from profiles.conditions import ConditionError, EvalError, analyse, compile_condition, new_context


def test_analysis_lists_the_members_read():
    needs = analyse('event.path.startsWith("/pricing") && profile.agg.pricing_views_7d >= 3')
    assert needs.event == {"path": frozenset()}
    assert needs.profile == {"agg": frozenset({"pricing_views_7d"})}


def test_analysis_ignores_string_literals_and_methods():
    needs = analyse('"event.secret" == event.name && event.properties.plan.startsWith("pro")')
    assert needs.event == {"name": frozenset(), "properties": frozenset({"plan"})}


def test_whole_objects_when_indexed():
    assert analyse('event.properties["plan"] == "x"').event == {"properties": None}
    assert analyse("event == null").event is None


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("event.type ==", "syntax"),
        ("foo(1)", "unknown function"),
        ("event.nope == 1", "unknown event field"),
        ("profile.agg.missing > 1", "unknown aggregate"),
        ("whatever > 1", "unknown variable"),
        ('event.path.split("/")', "unknown function"),
        ("", "non-empty"),
    ],
)
def test_bad_expressions_are_rejected_with_a_reason(source, reason):
    with pytest.raises(ConditionError, match=reason):
        compile_condition(source, aggregates=frozenset({"known"}))


def test_where_sees_only_the_event():
    with pytest.raises(ConditionError, match="only `event`"):
        compile_condition("profile.score > 1", allow_profile=False)


def test_comprehension_variables_are_allowed():
    cond = compile_condition("event.properties.items.exists(i, i.price > 10)")
    ctx = new_context({"properties": {"items": [{"price": 5}, {"price": 12}]}})
    assert cond(ctx) is True


def test_runtime_failures_raise_eval_error():
    cond = compile_condition("event.properties.revenue > 1")
    with pytest.raises(EvalError):
        cond(new_context({"properties": {}}))
    assert compile_condition("has(event.properties.revenue)")(new_context({"properties": {}})) is False


def test_memo_keys_only_for_plain_event_members():
    assert compile_condition('event.path.startsWith("/p")').memo_keys == ("path",)
    assert compile_condition("event.properties.x == 1").memo_keys is None
    assert compile_condition("profile.score > 1").memo_keys is None
