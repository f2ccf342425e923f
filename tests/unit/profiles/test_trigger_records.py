import json

from profiles.triggers import records as trig


def record(**kw):
    base = {
        "rule": "pricing_dwell",
        "oneid": "o1",
        "ref": "msg-1",
        "event_time": 5,
        "fired_at": 9,
        "message_id": "msg-1",
        "marketing": True,
        "values": {"path": "/pricing", "dwell_s": 200},
    }
    base.update(kw)
    return trig.build(**base)


def test_record_has_the_avro_shape():
    t = record()
    assert set(t) == {
        "rule",
        "oneid",
        "idempotency_key",
        "event_time",
        "fired_at",
        "message_id",
        "marketing",
        "values",
    }
    assert json.loads(t["values"]) == {"path": "/pricing", "dwell_s": 200}
    assert isinstance(t["values"], str) and t["marketing"] is True


def test_idempotency_key_depends_on_rule_and_ref_not_oneid():
    assert record()["idempotency_key"] == record(oneid="other")["idempotency_key"]
    assert record()["idempotency_key"] != record(ref="msg-2")["idempotency_key"]
    assert record()["idempotency_key"] != record(rule="x")["idempotency_key"]
    assert record()["idempotency_key"].startswith("pricing_dwell:")


def test_history_round_trip():
    t = record(values={"path": "/p|x\ny", "n": '引号"'})
    line = trig.history_entry(t)
    assert "\n" not in line
    assert trig.from_history("o1", line) == t
