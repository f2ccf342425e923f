"""The Redis layout of profiles, declared once: Python reads it, the Lua gets it as constants.

Keys (``P`` = ``settings.redis_prefix``; ``{oneid}`` is a Redis Cluster hash tag, so one
profile's keys live in one slot):

    P p:{oneid}        hash    the profile (fields below)
    P p:{oneid}:x      hash    open page views (v:<sid>) and pending delayed triggers (d:<id>)
    P p:{oneid}:h      string  fired triggers, a history line each (records.history_entry),
                               newest first, bounded by options.trigger_history
    P p:{oneid}:r      string  survivor OneID after a merge (expires after options.redirect_ttl)
    P pdue:<partition> zset    timers "<letter>|oneid|ref" ("i|oneid" for inactivity, "s|oneid" for
                               the segment timer: profiles/segments/timing.py), by due ms
    P pdue             set     partitions that have timers
    P outbox           hash    fired triggers waiting for Kafka's ack: "<oneid>\\t<history line>"
    P segments         hash    segment name -> its last version (entries and exits so far; see
                               profiles/segments/): also the list of segments that ever had members
    P segment:<name>   zset    the segment's members (OneIDs): stream segments score each by its
                               next re-check (ms), SQL segments by when it entered (ms)
    P segments:outbox  hash    segment entries/exits waiting for Kafka's ack: idempotency key ->
                               record line (a JSON array, slots SEGMENT_LINE_* below)
    P segments:refresh string  the token of the SQL segment refresh running now (expires)
    P segments:scan    hash    f: the timed segments served, c: the SCAN cursor ("done") of the
                               pass that gives profiles without one a segment timer (segscan)
    P {oneid}:e        hash    erased OneIDs (touchstream/tombstones.py, written by the identity
                               graph's erasure): apply and merge never create state under one

Main hash fields:

    fs ls li          first seen, last seen, last interaction (event time, ms)
    pr                last seen when stale fields were last pruned (pruning runs hourly)
    pt                partition whose timers hold this profile's timers
    x                 "1" while the transient hash (open views, delayed triggers) exists
    o:<partition>     last applied Kafka offset of that partition ("<partition>:<oneid>": of an alias)
    t:<trait>         "<ms base 36>|<json>"  (latest event time wins)
    a:<id>:<bucket>   bucket value of an aggregate (id: rules.storage_id; see aggregates.py)
    g:<tag>           expiry ms, "0" for never
    s                 "<behaviour score>|<ref ms>" (see scoring.py)
    tr                tier last assigned (upgrade/downgrade detection)
    c:<rule>          cooldown end (ms) of a trigger rule
    k:<16 hex>        fired idempotency key -> expiry (ms)
    r:<oneid>         a OneID merged into this one (its redirect key is deleted with us)
    m:<segment>       member of a stream segment since (ms); absent: not a member
    mg                merges folded into this profile (a segment evaluation read before one is stale)

:func:`lua_constants` renders every name below as a Lua ``local``; :mod:`profiles.script`
prepends them to the script, so both halves spell the layout the same way.
"""

from __future__ import annotations

from touchstream import tombstones

# -- keys -------------------------------------------------------------------------------------------
PROFILE_KEY = "p:"  # + "{oneid}" + suffix
TRANSIENT_SUFFIX = ":x"
HISTORY_SUFFIX = ":h"
REDIRECT_SUFFIX = ":r"
DUE_KEY = "pdue:"  # + partition
DUE_SET_KEY = "pdue"
OUTBOX_KEY = "outbox"
OUTBOX_SEPARATOR = "\t"  # outbox field: oneid, separator, history line
SEGMENTS_KEY = "segments"
SEGMENT_MEMBERS_KEY = "segment:"  # + segment name
SEGMENT_OUTBOX_KEY = "segments:outbox"
SEGMENT_REFRESH_LOCK_KEY = "segments:refresh"  # string: the running SQL refresh's token
SEGMENT_SCAN_KEY = "segments:scan"  # hash: the scan giving every profile a segment timer
ERASED_KEY = tombstones.SUFFIX  # tombstones: erased OneID -> "<ms>|<survivor>"

# -- main hash: scalar fields and field prefixes -------------------------------------------------
FIRST_SEEN = "fs"
LAST_SEEN = "ls"
LAST_INTERACTION = "li"
PRUNED_AT = "pr"
PARTITION = "pt"
HAS_TRANSIENT = "x"
SCORE = "s"
TIER = "tr"
OFFSET = "o:"
TRAIT = "t:"
BUCKET = "a:"
TAG = "g:"
COOLDOWN = "c:"
FIRED_KEY = "k:"
MERGED = "r:"
SEGMENT = "m:"
MERGE_GEN = "mg"
PREFIX_CHARS = 2  # every field prefix is two characters

# -- transient hash field prefixes (a field's first letter is its timer's letter, below) -----------
VIEW = "v:"
DELAYED = "d:"

# -- timers: the letter before "|" in a due-zset member ---------------------------------------------
TIMER_VIEW = "v"  # an open page view (dwell)
TIMER_DELAYED = "d"  # a delayed trigger
TIMER_INACTIVITY = "i"  # a tier's inactivity downgrade (member "i|oneid", no ref)
TIMER_SEGMENTS = "s"  # the next time time alone could change a timed segment (member "s|oneid", no ref)
NO_REF_TIMERS = TIMER_INACTIVITY + TIMER_SEGMENTS  # letters whose member is "<letter>|oneid"

# -- apply ops (ProfileState records them, apply.lua replays them) ---------------------------------
OP_SEEN = "S"  # S ts interaction(0/1)
OP_TRAIT = "T"  # T name ts stamped-json
OP_BUCKET = "A"  # A field kind value
OP_TAG = "G"  # G tag expiry
OP_POINTS = "P"  # P points ts half-life
OP_MAX = "M"  # M field value  (keep the larger)
OP_TIER = "R"  # R tier [expected tier]
OP_VIEW = "V"  # V sid json due [expected json]
OP_SCHEDULE = "D"  # D timer-id json due
OP_UNSCHEDULE = "Dx"  # Dx timer-id
OP_INACTIVITY = "I"  # I due [expected due]
OP_FIRE = "F"  # F key16 rule cooldown-until event-time key-expiry history-line index

# -- history line slots (records.history_entry), 1-based as Lua reads them -------------------------
HISTORY_EVENT_TIME = 3
HISTORY_FIRED_AT = 4

# -- segment records: what changed, why, and who sends it (profiles/segments/records.py) ----------
SEGMENT_ENTERED = "segment_entered"
SEGMENT_EXITED = "segment_exited"
REASON_MERGED = "merged"  # the OneID was merged into another: it exits, the survivor is re-evaluated
REASON_DELETED = "deleted"  # the profile was deleted (or is gone): it exits every segment
WRITER_LOOP = "p"  # written by a stage loop, which produces it right away
WRITER_REFRESH = "r"  # written by an SQL refresh (one at a time): the next refresh sends what is left
WRITER_ORPHAN = "o"  # written where nobody produces it (a deletion): the next sweep sends it
# record line slots, 1-based as Lua writes them
SEGMENT_LINE_CHANGE = 1
SEGMENT_LINE_SEGMENT = 2
SEGMENT_LINE_ONEID = 3
SEGMENT_LINE_VERSION = 4
SEGMENT_LINE_REASON = 5
SEGMENT_LINE_AS_OF = 6
SEGMENT_LINE_CHANGED_AT = 7
SEGMENT_LINE_MESSAGE_ID = 8
SEGMENT_LINE_SURVIVOR = 9
SEGMENT_LINE_FACTS = 10
SEGMENT_LINE_WRITER = 11

# -- script commands --------------------------------------------------------------------------------
COMMANDS = ("read", "apply", "due", "merge", "delete", "erase", "segdue", "segset", "segscan", "seed")

def profile_key(prefix: str, oneid: str, suffix: str = "") -> str:
    """``<prefix>p:{oneid}<suffix>`` (suffix: "", TRANSIENT_SUFFIX, HISTORY_SUFFIX, REDIRECT_SUFFIX)."""
    return f"{prefix}{PROFILE_KEY}{{{oneid}}}{suffix}"


def due_key(prefix: str, partition: int | str) -> str:
    return f"{prefix}{DUE_KEY}{partition}"


def outbox_key(prefix: str) -> str:
    return f"{prefix}{OUTBOX_KEY}"


def outbox_field(oneid: str, history_line: str) -> str:
    return f"{oneid}{OUTBOX_SEPARATOR}{history_line}"


def segment_key(prefix: str, name: str) -> str:
    """The member index of one segment: ``<prefix>segment:<name>``."""
    return f"{prefix}{SEGMENT_MEMBERS_KEY}{name}"


def timer_member(letter: str, oneid: str, ref: str | None = None) -> str:
    """A due-zset member: ``<letter>|oneid|ref``, or ``<letter>|oneid`` (inactivity, segments)."""
    return f"{letter}|{oneid}" if ref is None else f"{letter}|{oneid}|{ref}"


def parse_timer_member(member: str) -> tuple[str, str, str | None]:
    """A due-zset member -> (letter, oneid, ref); inactivity and segment timers have no ref."""
    letter, rest = member[0], member[2:]
    if letter in NO_REF_TIMERS:
        return letter, rest, None
    oneid, _, ref = rest.rpartition("|")
    return letter, oneid, ref


def lua_constants() -> str:
    """Every upper-case text or number of this module as a Lua ``local``, in declaration order."""
    lines = ["-- generated from profiles/layout.py: the layout is declared there, once"]
    names = [n for n, v in globals().items() if n.isupper() and isinstance(v, str | int)]
    for name in names:
        value = globals()[name]
        if isinstance(value, str):
            text = value.replace("\\", "\\\\").replace("'", "\\'").replace("\t", "\\t")
            lines.append(f"local {name} = '{text}'")
        else:
            lines.append(f"local {name} = {value}")
    return "\n".join(lines) + "\n"
