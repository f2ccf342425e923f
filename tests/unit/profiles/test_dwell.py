from profiles import dwell
from profiles.dwell import View

S = 1000
RULES = {"pricing_dwell": 180 * S}


def open_view(ts=0, path="/pricing", rules=RULES):
    view, hits = dwell.on_page(None, sid="s1", ts_ms=ts, path=path, message_id="m-open", matching=rules)
    assert hits == []
    return view


def test_next_page_after_200s_closes_the_view_and_fires():
    view = open_view()
    new, hits = dwell.on_page(view, sid="s1", ts_ms=200 * S, path="/docs", message_id="m2", matching={})
    assert new is None
    assert [h.rule for h in hits] == ["pricing_dwell"]
    assert hits[0].dwell_ms == 200 * S and hits[0].closed
    assert hits[0].event_time == 180 * S + 1
    assert hits[0].view.message_id == "m-open"


def test_short_dwell_does_not_fire():
    view = open_view()
    new, hits = dwell.on_page(view, sid="s1", ts_ms=60 * S, path="/docs", message_id="m2", matching={})
    assert new is None and hits == []


def test_exactly_the_threshold_is_not_more_than_it():
    view = open_view()
    _, hits = dwell.on_leave(view, 180 * S)
    assert hits == []
    _, hits = dwell.on_leave(view, 180 * S + 1)
    assert len(hits) == 1


def test_reloads_keep_the_view_open_and_fire_once():
    view = open_view()
    for t in (60, 120, 170):
        view, hits = dwell.on_page(
            view, sid="s1", ts_ms=t * S, path="/pricing", message_id=f"r{t}", matching=RULES
        )
        assert hits == [] and view.open_ms == 0  # time counts from the first load
    view, hits = dwell.on_page(
        view, sid="s1", ts_ms=190 * S, path="/pricing", message_id="r190", matching=RULES
    )
    assert len(hits) == 1 and hits[0].view.message_id == "m-open"
    assert view is None  # every rule fired: nothing left to measure


def test_heartbeat_measures_without_closing():
    view = open_view()
    view, hits = dwell.on_heartbeat(view, 100 * S)
    assert view is not None and hits == []
    view, hits = dwell.on_heartbeat(view, 181 * S)
    assert len(hits) == 1 and not hits[0].closed


def test_page_left_closes():
    view = open_view()
    new, hits = dwell.on_leave(view, 250 * S)
    assert new is None and hits[0].dwell_ms == 250 * S and hits[0].closed


def test_watermark_fires_an_open_view_once():
    view = open_view()
    assert view.due_ms() == 180 * S + 1
    same, hits = dwell.on_watermark(view, 170 * S)
    assert same == view and hits == []
    gone, hits = dwell.on_watermark(view, 190 * S)
    assert gone is None and len(hits) == 1 and hits[0].dwell_ms == 190 * S
    assert dwell.on_watermark(gone, 500 * S) == (None, [])


def test_several_thresholds_fire_in_turn():
    view = open_view(rules={"short": 30 * S, "long": 180 * S})
    view, hits = dwell.on_watermark(view, 40 * S)
    assert [h.rule for h in hits] == ["short"] and view.due_ms() == 180 * S + 1
    view, hits = dwell.on_page(view, sid="s1", ts_ms=200 * S, path="/x", message_id="m", matching={})
    assert [h.rule for h in hits] == ["long"]


def test_late_events_change_nothing():
    view = open_view(ts=100 * S)
    same, hits = dwell.on_page(view, sid="s1", ts_ms=50 * S, path="/docs", message_id="late", matching={})
    assert same is view and hits == []
    assert dwell.on_leave(view, 10 * S) == (view, [])
    # and an out-of-order page does not open a view
    new, _ = dwell.on_page(
        None, sid="s1", ts_ms=5 * S, path="/pricing", message_id="x", matching=RULES, in_order=False
    )
    assert new is None


def test_pages_without_dwell_rules_open_nothing():
    new, hits = dwell.on_page(None, sid="s1", ts_ms=0, path="/blog", message_id="m", matching={})
    assert new is None and hits == []


def test_view_json_round_trip():
    view = View("s1", 5, "/pricing?a=1|b", "m|1", {"a": 1, "b": 2}, frozenset({"a"}))
    assert View.from_json("s1", view.to_json()) == view


def test_session_key_prefers_an_explicit_session():
    ev = {"anonymous_id": "anon", "user_id": "u"}
    assert dwell.session_key(ev, {"sessionId": "abc"}, {}) == dwell.session_key(
        {}, {"sessionId": "abc"}, None
    )
    assert dwell.session_key(ev, None, None) != dwell.session_key({"user_id": "u"}, None, None)
    assert len(dwell.session_key(ev, None, None)) == 12
