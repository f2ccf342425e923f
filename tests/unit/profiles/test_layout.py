import re

from profiles import layout, script


def test_every_upper_case_name_the_lua_reads_is_a_generated_constant():
    defined = set(re.findall(r"^local (\w+) =", layout.lua_constants(), re.M))
    body = "\n".join((script.LUA_DIR / f"{name}.lua").read_text() for name in script.PARTS)
    code = re.sub(r"'[^'\n]*'", "", re.sub(r"--[^\n]*", "", body))  # no comments, no strings
    used = set(re.findall(r"\b([A-Z][A-Z0-9_]{2,})\b", code)) - {"ARGV", "KEYS"}
    local = set(re.findall(r"^local ([A-Z][A-Z0-9_]+) =", body, re.M))
    assert used - local <= defined
    assert {"OP_FIRE", "TIMER_INACTIVITY", "DELAYED"} <= used  # the check sees the constants


def test_one_script_one_sha():
    assert script.SCRIPT.startswith(layout.lua_constants())
    assert len(script.SCRIPT_SHA) == 40


def test_timer_members_round_trip():
    timers = ((layout.TIMER_VIEW, "ab12"), (layout.TIMER_DELAYED, "t9"), (layout.TIMER_INACTIVITY, None))
    for letter, ref in timers:
        member = layout.timer_member(letter, "o|1", ref)  # a OneID may hold "|"; refs never do
        assert layout.parse_timer_member(member) == (letter, "o|1", ref)


def test_keys_are_hash_tagged():
    assert layout.profile_key("ts:", "o1", layout.HISTORY_SUFFIX) == "ts:p:{o1}:h"
    assert layout.due_key("ts:", 3) == "ts:pdue:3"
    assert layout.outbox_field("o1", "[1]") == "o1\t[1]"
