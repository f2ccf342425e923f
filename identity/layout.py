"""The identity graph's Redis layout and script protocol, declared once.

graph.py builds keys and reads replies with these names, and the Lua scripts get the same names
as constants (:func:`lua_prelude`, prepended to graph_lib.lua), so no string is mirrored by hand
between Python and Lua. The prelude depends on nothing but this module: each script keeps one
SHA whatever the prefix or rules.

Keys (B = ``<prefix>{oneid}:``, one hash tag so the graph lives in one Redis Cluster slot;
n = first 8 hex of sha1(value) as a number mod the rules' index buckets):

    B meta             hash    M_BUCKETS (index buckets), M_VERSION (layout), M_COLLECTED (idle
                               anonymous profiles collected so far)
    B i:<type>:<n>     hash    value -> OneID, or GUARDED once the frequency guard stopped the value
    B p:<oneid>        hash    "type:value" -> edge, msgpack [ts, message_id, parent, since, partition,
                               offset, untrusted]: the linking event (a lower-case UUID message_id is
                               packed to 17 bytes), the identifier it linked through as the first 8
                               hex of sha1("type:value") ("" for a root), when it joined its person
                               (0: ts), the event's partition/offset when known (-1 when unknown but
                               untrusted is set) and UNTRUSTED when only untrusted events asserted the
                               identifier (absent: trusted); values stay <= 64 bytes, so the hash
                               keeps Redis's listpack encoding; plus the fields below
    B a:<n>            hash    merged OneID -> survivor (n from sha1 of the merged OneID)
    B f:<type>:<h16>   set     people a contested value was seen with (h16: the first 16 hex of the
                               value's keyed pseudonym, touchstream/pseudonyms.py; a person: 12 hex
                               of sha1(pseudonym ":" person key), so no key names a searchable
                               hash); expires frequency_guard.window_days after its last write
    B anon             zset    OneID of a profile holding only anonymous types -> last seen (receipt
                               time, ms): what IdentityGraph.collect_idle_anonymous removes once idle
    B s                hash    "type:" + pseudonym -> suppressed until (ms): an event received at or
                               before it that carries the identifier resolves to no one (an erasure
                               writes erasure time + the suppression window; entries written before
                               the window existed hold the erasure time)
    B e                hash    erased OneID -> "<erased ms>|<survivor>": tombstones, never removed
                               (touchstream/tombstones.py; read by the profile scripts too); a
                               tombstoned OneID is never issued again
    B x:<oneid>        hash    erasure record of a survivor: what the graph removed (aliases, the
                               identifiers' hashes until the erasure finishes), and the erasure
                               service's finished steps (step:<name> -> JSON counts)
    B audit            stream  unmerge / delete entries with actor and time
    B mo               hash    merge outbox: merged OneID -> "survivor|unix seconds"

Profile fields that are not identifiers (they all start with F_MARK):

    !c                 creation event time (ms): the older profile survives a merge
    !u                 the person-key value (the person this profile is)
    !n:<type>          how many identifiers of the type it holds
    !a:<oneid>         "" for every OneID merged into it (its aliases)
    !nm                OneIDs it must never be merged with again (space separated)
    !ut                "1" once it may hold an UNTRUSTED edge (set when one is written, carried by
                       merges and splits, never cleared): a trusted event re-asserting identifiers
                       of a profile without it reads no edges
"""

from __future__ import annotations

import hashlib
import json
import re

from touchstream import tombstones

HASH_TAG = "{oneid}"

# ---- keys, under the graph's base ----
K_META = "meta"
K_INDEX = "i:"
K_PROFILE = "p:"
K_ALIAS = "a:"
K_GUARD = "f:"
K_ANONYMOUS = "anon"
K_SUPPRESSION = "s"
K_AUDIT = "audit"
K_MERGE_OUTBOX = "mo"
K_ERASED = tombstones.SUFFIX.removeprefix(HASH_TAG + ":")  # base + K_ERASED == tombstones.key(prefix)
K_ERASURE = "x:"

# ---- values ----
GUARDED = "!"  # index value of a value the frequency guard stopped
UNTRUSTED = 1  # edge element 7: only untrusted events (browser keys) asserted this identifier
ONEID_PREFIX = "o_"
LAYOUT_VERSION = 2  # 2: keyed pseudonyms name suppression entries, guard sets and new OneIDs

# ---- profile fields (identifiers are "type:value"; everything else starts with F_MARK) ----
F_MARK = "!"
F_CREATED = "!c"
F_PERSON = "!u"
F_COUNT = "!n:"
F_ALIAS = "!a:"
F_NEVER = "!nm"
F_UNTRUSTED = "!ut"

# ---- erasure record fields (K_ERASURE) ----
X_ALIASES = "aliases"  # JSON [OneID, ...] merged into the erased survivor
X_HASHES = "hashes"  # JSON ["type:pseudonym", ...] of its identifiers (dropped once the erasure finished)
X_STEP = "step:"  # + step name -> JSON of what the step removed

# ---- meta hash fields ----
M_BUCKETS = "nb"
M_VERSION = "v"
M_COLLECTED = "collected"

# ---- graph.lua: the rules it is sent (identity/rules.py script_config) ----
C_PERSON_KEY = "pk"
C_TYPES = "t"  # [[type, max, window_ms, repoint, max_persons], ...] in priority order, -1: none
C_DEFAULT_PERSONS = "dm"
C_MAX_MEMBERS = "mm"
C_GUARD_MS = "fw"
C_ANONYMOUS = "an"

# ---- graph.lua: its reply ----
R_ONEIDS = "o"
R_MERGES = "m"
R_REJECTIONS = "r"
R_MOVES = "v"

# ---- graph_admin.lua: operations and reply fields ----
OP_UNMERGE = "unmerge"
OP_DELETE = "delete"
OP_EDGES = "edges"
OP_COLLECT = "collect"
OP_BACKFILL = "backfill"
OP_TOMBSTONE = "tombstone"
OP_PURGE = "purge"
R_ONEID = "oneid"
R_NEW = "new"
R_IDS = "ids"
R_EVENTS = "events"
R_TIME = "time"
R_RETRY = "retry"
R_EDGES = "edges"
R_COLLECTED = "c"
R_COUNT = "n"
R_ALIASES = "aliases"
R_OUTBOX = "outbox"

# ---- rejection and merge reasons the scripts write (the rest are decided in graph.py) ----
WHY_SUPPRESSED = "suppressed"  # the event carries an identifier of a deleted profile
WHY_FREQUENCY_GUARD = "frequency_guard"  # the value was seen with too many people; it links no one
WHY_NEWER_LINK = "newer_link"  # a shared device/browser was re-pointed by a newer login already
WHY_UNMERGED = "unmerged"  # an operator split these two profiles; they are not merged again
WHY_LIMIT = "limit:"  # "limit:<type>": linking would exceed that type's limit
WHY_PROFILE_FULL = "profile_full"  # linking would put more than max_members into one profile
WHY_UNTRUSTED_MERGE = "untrusted_merge"  # an untrusted event met two profiles that hold trusted ids
WHY_SHARED = "shared:"  # merge reason "shared:<type>": the identifier both profiles met on

# ---- error replies: a code, a space, then detail ----
E_GRAPH_STATE = "GRAPH_STATE"
E_NOT_FOUND = "NOT_FOUND"
E_NOT_LINKED = "NOT_LINKED"
E_UNMERGE_ALL = "UNMERGE_ALL"
E_UNKNOWN_OP = "UNKNOWN_OP"

_LUA_NAME = re.compile(r"^(K|F|M|C|R|OP|WHY|E|X)_[A-Z_]+$|^(GUARDED|UNTRUSTED|ONEID_PREFIX|LAYOUT_VERSION)$")


def base(prefix: str) -> str:
    """Every key of the graph starts with this (ARGV[1] of each script)."""
    return f"{prefix}{HASH_TAG}:"


def bucket(value: str, buckets: int) -> int:
    """Which of a type's index hashes holds ``value`` (graph_lib.lua ``bucket``)."""
    return int(hashlib.sha1(value.encode("utf-8")).hexdigest()[:8], 16) % buckets  # noqa: S324


def index_key(graph_base: str, type_: str, value: str, buckets: int) -> str:
    return f"{graph_base}{K_INDEX}{type_}:{bucket(value, buckets)}"


def profile_key(graph_base: str, oneid: str) -> str:
    return f"{graph_base}{K_PROFILE}{oneid}"


def alias_key(graph_base: str, oneid: str, buckets: int) -> str:
    return f"{graph_base}{K_ALIAS}{bucket(oneid, buckets)}"


def guard_key(graph_base: str, type_: str, pseudonym: str) -> str:
    """The set of people a contested value (by its keyed pseudonym) was seen with (graph_lib.lua
    ``fkey``)."""
    return f"{graph_base}{K_GUARD}{type_}:{pseudonym[:16]}"


def lua_constants() -> dict[str, str | int]:
    """The names the scripts get, in a fixed order (the prelude's text decides the SHA)."""
    return {name: value for name, value in sorted(globals().items()) if _LUA_NAME.match(name)}


def lua_prelude() -> str:
    """``local NAME = value`` for every protocol name, prepended to each script."""
    lines = ["-- generated from identity/layout.py: the graph's layout and protocol, named once"]
    for name, value in lua_constants().items():
        literal = str(value) if isinstance(value, int) else json.dumps(value)
        lines.append(f"local {name} = {literal}")
    return "\n".join(lines) + "\n"
