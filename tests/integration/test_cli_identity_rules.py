"""The CLI builds its identity graph from the configured rules, as the worker does.

It once used the shipped rules whatever TOUCHSTREAM_IDENTITY_RULES_PATH said: with other index
buckets, `identity show` answered "no profile has this identifier" for one that exists.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import redis
import yaml

from apps import factory
from identity.graph import IdentityGraph
from identity.rules import load_rules
from tests.integration.conftest import cli

DEFAULT_RULES = Path(__file__).resolve().parents[2] / "identity" / "default_rules.yaml"


def test_identity_commands_honour_a_custom_rules_file(settings, tmp_path):
    data = yaml.safe_load(DEFAULT_RULES.read_text())
    data["storage"]["index_buckets"] = 512  # not the shipped 4096: the index lands elsewhere
    path = tmp_path / "identity-rules.yaml"
    path.write_text(yaml.safe_dump(data))
    own = replace(settings, redis_prefix=settings.redis_prefix + "custom-rules:",
                  identity_rules_path=str(path))
    graph = IdentityGraph(redis.Redis.from_url(own.redis_url), own.redis_prefix, load_rules(path),
                          pseudonyms=factory.pseudonyms(own))  # the CLI's own secret: the stack's
    event = {"message_id": "m1", "timestamp": int(time.time() * 1000),
             "identifiers": [{"type": "email", "value": "ann@qq.com"},
                             {"type": "phone", "value": "+8613912345678"}]}
    [oneid] = graph.resolve_batch([event]).oneids

    shown = json.loads(cli(own, "identity", "show", "email:Ann@QQ.com"))
    assert shown["oneid"] == oneid
    assert shown["identifiers"]["phone"] == ["+8613912345678"]

    split = json.loads(cli(own, "identity", "unmerge", oneid, "--identifier", "phone:139 1234 5678"))
    assert split["new_oneid"] != oneid and graph.lookup("phone", "+8613912345678") == split["new_oneid"]
    cli(own, "identity", "delete", oneid)
    assert graph.lookup("email", "ann@qq.com") is None
