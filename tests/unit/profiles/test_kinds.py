import importlib

from profiles import layout
from profiles.triggers import kinds
from profiles.triggers.kinds.base import TAGS_ORDER


def test_every_kind_module_is_found():
    expected = {"event", "delayed", "dwell", "score_crossed", "tier_upgrade", "tier_downgrade"}
    assert set(kinds.NAMES) == expected
    assert kinds.get("tier_downgrade") is kinds.get("tier_upgrade")


def test_each_kind_documents_itself_and_owns_distinct_timers():
    for kind in kinds.KINDS:
        assert importlib.import_module(kind.__module__).__doc__
    letters = [k.timer for k in kinds.KINDS if k.timer]
    assert len(letters) == len(set(letters))
    assert set(kinds.TIMERS) == {layout.TIMER_VIEW, layout.TIMER_DELAYED, layout.TIMER_INACTIVITY}


def test_hooks_run_in_the_order_rules_rely_on():
    # score and dwell rules must not see tags set by the same event; event triggers must
    order = {name: kinds.get(name).order for name in kinds.NAMES}
    assert order["score_crossed"] < order["dwell"] < TAGS_ORDER < order["event"] < order["delayed"]
    assert order["delayed"] < order["tier_upgrade"]
