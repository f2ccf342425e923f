"""Synthetic multi-channel traffic whose true people are known, to measure OneID quality.

Each person gets channels that real CDP traffic has: browsers browsing anonymously and
identifying late, an app on a phone, a WeChat mini-program openid bound later (and an
official-account openid tied by unionid), store purchases identified by phone only, CRM
imports by crm_id + email, emails and phones typed in many formats, placeholder values typed
by many people, and family tablets shared by two logged-in people.

Ground truth conventions (what identifiers can and cannot tell):
- every channel of a person carries at least one linking event at some time (a login, a
  form, a binding, an import), because traffic that never links is not a resolver's to find;
- on a shared family tablet, events between logins belong to whoever logged in last;
- a store purchase typed with a placeholder phone only is unattributable: truth keeps its
  person, so it counts against recall, as it should.

Values are written raw (``"  Foo@Example.COM "``, ``"139 1234 5678"``) in traits and
normalised into ``identifiers`` with :func:`identity.identifiers.normalise`, as the collector
would; the generator is deterministic for a given (persons, seed).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from identity.identifiers import normalise
from schemas.testing import event_record
from touchstream.errors import TouchstreamError

EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
MINUTE_MS = 60_000
DAY_MS = 86_400_000
SPAN_DAYS = 60

#: Placeholders the default rules block (typed by people who will not give their details).
LISTED_PLACEHOLDER_EMAIL = "test@test.com"
LISTED_PLACEHOLDER_PHONE = "13800000000"
#: Shared values the rules do not list: the frequency guard has to catch them.
UNLISTED_SHARED_EMAIL = "123456@qq.com"

_DOMAINS = ("qq.com", "163.com", "126.com", "gmail.com", "outlook.com", "sina.com", "foxmail.com")
_WORK_DOMAINS = ("acme.cn", "globex.com", "initech.cn", "umbrella.com.cn")
_MOBILE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "139", "150", "151", "152", "153",
    "155", "156", "157", "158", "159", "177", "180", "181", "182", "185", "186", "187",
    "188", "189", "199",
)
_NAMES = ("li", "wang", "zhang", "liu", "chen", "yang", "zhao", "huang", "zhou", "wu", "xu", "sun")
_PAGES = ("Home", "Product", "Category", "Search", "Cart", "Article", "Campaign")
_TRACKS = ("Product Viewed", "Product Added", "Video Played", "Coupon Claimed", "Search Performed")


def _normaliser() -> Callable[[str, object], str]:
    """The project's one normaliser: the ground truth is spelled as the edge would store it."""
    return normalise


@dataclass
class _Person:
    pid: str
    start: int
    user_id: str | None = None
    emails: list[str] = field(default_factory=list)
    phone: str | None = None
    browsers: list[str] = field(default_factory=list)
    device: tuple[str, str] | None = None  # (device_id, app anonymous_id)
    openid: str | None = None
    unionid: str | None = None
    oa_openid: str | None = None
    crm_id: str | None = None
    store_visits: int = 0
    placeholder_email: bool = False
    placeholder_store: bool = False
    shared_email: bool = False


class _Builder:
    """Makes contract-shaped events and remembers whose they are."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.normalise = _normaliser()
        self.events: list[dict[str, Any]] = []
        self.truth: dict[str, str] = {}

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def email_variant(self, email: str) -> str:
        local, _, domain = email.partition("@")
        return self.rng.choice(
            (
                email,
                email.upper(),
                f"  {local.capitalize()}@{domain.upper()} ",
                f"{local}@{domain.capitalize()}",
                f" {email}",
            )
        )

    def phone_variant(self, phone: str) -> str:
        return self.rng.choice(
            (
                phone,
                f"{phone[:3]} {phone[3:7]} {phone[7:]}",
                f"+86 {phone}",
                f"+86-{phone[:3]}-{phone[3:7]}-{phone[7:]}",
                f"(+86) {phone}",
            )
        )

    def add(
        self,
        pid: str,
        ts: int,
        kind: str,
        *,
        source: str,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        device_id: str | None = None,
        traits: dict[str, str] | None = None,
    ) -> None:
        traits = traits or {}
        identifiers: list[dict[str, str]] = []
        invalid: list[dict[str, str]] = []
        raw = [("user_id", user_id), ("anonymous_id", anonymous_id), ("device_id", device_id)]
        raw += [(name, value) for name, value in traits.items()]
        seen: set[tuple[str, str]] = set()
        for type_, value in raw:
            if value is None:
                continue
            try:
                normalised = self.normalise(type_, value)
            except (TouchstreamError, ValueError) as exc:  # the project's InvalidIdentifier
                reason = getattr(exc, "reason", "invalid")
                invalid.append({"type": type_, "value": str(value), "reason": reason})
                continue
            if (type_, normalised) not in seen:
                seen.add((type_, normalised))
                identifiers.append({"type": type_, "value": normalised})
        message_id = self.uid()
        event_name = name = None
        if kind == "track":
            event_name = "Order Completed" if source == "store-pos" else self.rng.choice(_TRACKS)
        elif kind in ("page", "screen"):
            name = self.rng.choice(_PAGES)
        context: dict[str, Any] = {"device": {"id": device_id}} if device_id else {}
        self.events.append(event_record(
            kind, ts, message_id=message_id, source=source, event=event_name, name=name,
            anonymous_id=anonymous_id, user_id=user_id, original_timestamp=ts, received_at=ts + 150,
            identifiers=identifiers, invalid_identifiers=invalid, context=json.dumps(context),
            traits=json.dumps(traits, ensure_ascii=False) if kind == "identify" else "{}",
        ))
        self.truth[message_id] = pid


def _person(rng: random.Random, index: int, used_phones: set[str]) -> _Person:
    person = _Person(pid=f"p{index:06d}", start=EPOCH_MS + rng.randrange(SPAN_DAYS * DAY_MS))
    if rng.random() < 0.85:
        person.user_id = f"u{rng.getrandbits(48):012x}"
    if rng.random() < 0.75:
        person.emails.append(f"{rng.choice(_NAMES)}.{index}@{rng.choice(_DOMAINS)}")
    if rng.random() < 0.85:
        while True:
            digits = f"{rng.choice(_MOBILE_PREFIXES)}{rng.randrange(10**8):08d}"
            if len(set(digits[3:])) > 3 and digits not in used_phones:
                break
        used_phones.add(digits)
        person.phone = digits
    if person.user_id is None and not person.emails and person.phone is None:
        person.emails.append(f"{rng.choice(_NAMES)}.{index}@{rng.choice(_DOMAINS)}")
    if person.user_id and rng.random() < 0.15:
        person.emails.append(f"{rng.choice(_NAMES)}{index}@{rng.choice(_WORK_DOMAINS)}")
    person.browsers = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.5 and (person.user_id or person.phone):
        person.device = (
            str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper(),
            str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        )
    if rng.random() < 0.4 and (person.user_id or person.phone):
        person.openid = "oMP" + f"{rng.getrandbits(120):030x}"[:25]
        if rng.random() < 0.7:
            person.unionid = "oU" + f"{rng.getrandbits(120):030x}"[:26]
            if rng.random() < 0.5:
                person.oa_openid = "oOA" + f"{rng.getrandbits(120):030x}"[:25]
    if person.emails and rng.random() < 0.3:
        person.crm_id = f"CRM{index:07d}"
    if person.phone and rng.random() < 0.3:
        person.store_visits = rng.randint(1, 4)
    person.placeholder_email = rng.random() < 0.08
    person.placeholder_store = rng.random() < 0.02
    return person


def _link_traits(b: _Builder, person: _Person, full: bool) -> dict[str, str]:
    """Traits a person types when they log in or fill a form (all of them the first time)."""
    traits: dict[str, str] = {}
    if person.emails and (full or b.rng.random() < 0.5):
        email = person.emails[0] if full else b.rng.choice(person.emails)
        traits["email"] = b.email_variant(email)
    if person.phone and (full or b.rng.random() < 0.3):
        traits["phone"] = b.phone_variant(person.phone)
    if person.placeholder_email and person.user_id and not full and b.rng.random() < 0.5:
        traits["email"] = LISTED_PLACEHOLDER_EMAIL
    return traits


def _browser(b: _Builder, person: _Person, anon: str, first_link: bool) -> int:
    """Anonymous sessions, a late identify in one of them, logged-in browsing after it."""
    rng = b.rng
    sessions = rng.randint(1, 4)
    link_at = rng.randrange(sessions)
    ts = person.start + rng.randrange(5 * DAY_MS)
    logged_in = False
    for s in range(sessions):
        count = rng.randint(2, 6)
        link_pos = rng.randrange(count) if s == link_at else -1
        for k in range(count):
            ts += rng.randint(1, 4) * MINUTE_MS
            if k == link_pos:
                traits = _link_traits(b, person, full=first_link)
                if person.user_id is None and not traits:
                    traits = {"email": b.email_variant(person.emails[0])} if person.emails else {
                        "phone": b.phone_variant(person.phone or "")}
                b.add(person.pid, ts, "identify", source="web", user_id=person.user_id,
                      anonymous_id=anon, traits=traits)
                logged_in = person.user_id is not None
                continue
            b.add(person.pid, ts, rng.choice(("page", "page", "track")), source="web",
                  user_id=person.user_id if logged_in else None, anonymous_id=anon)
        ts += rng.randint(1, 6) * DAY_MS
    return ts


def _app(b: _Builder, person: _Person) -> None:
    assert person.device is not None
    rng = b.rng
    device_id, anon = person.device
    ts = person.start + rng.randrange(10 * DAY_MS)
    sessions = rng.randint(1, 4)
    link_at = rng.randrange(sessions)
    logged_in = False
    for s in range(sessions):
        if s == link_at:
            traits = {} if person.user_id else {"phone": b.phone_variant(person.phone or "")}
            b.add(person.pid, ts, "identify", source="app", user_id=person.user_id, anonymous_id=anon,
                  device_id=device_id, traits=traits)
            logged_in = person.user_id is not None
        for _ in range(rng.randint(1, 5)):
            ts += rng.randint(1, 3) * MINUTE_MS
            b.add(person.pid, ts, rng.choice(("screen", "track")), source="app",
                  user_id=person.user_id if logged_in else None, anonymous_id=anon, device_id=device_id)
        ts += rng.randint(1, 5) * DAY_MS


def _wechat(b: _Builder, person: _Person) -> None:
    assert person.openid is not None
    rng = b.rng
    ts = person.start + rng.randrange(20 * DAY_MS)
    for _ in range(rng.randint(1, 4)):  # mini-program browsing before binding: openid only
        ts += rng.randint(5, 90) * MINUTE_MS
        b.add(person.pid, ts, "track", source="wechat-mp", traits={"wechat_openid": person.openid})
    ts += rng.randint(1, 10) * DAY_MS
    traits = {"wechat_openid": person.openid}
    if person.unionid:
        traits["wechat_unionid"] = person.unionid
    if person.phone and (person.user_id is None or rng.random() < 0.5):
        traits["phone"] = b.phone_variant(person.phone)
    b.add(person.pid, ts, "identify", source="wechat-mp", user_id=person.user_id, traits=traits)
    for _ in range(rng.randint(0, 3)):
        ts += rng.randint(5, 600) * MINUTE_MS
        b.add(person.pid, ts, "track", source="wechat-mp", user_id=person.user_id,
              traits={"wechat_openid": person.openid})
    if person.oa_openid and person.unionid:
        oa_ts = person.start + rng.randrange(30 * DAY_MS)
        for _ in range(rng.randint(1, 3)):
            oa_ts += rng.randint(60, 3000) * MINUTE_MS
            b.add(person.pid, oa_ts, "track", source="wechat-oa",
                  traits={"wechat_openid": person.oa_openid, "wechat_unionid": person.unionid})


def _store(b: _Builder, person: _Person) -> None:
    rng = b.rng
    for _ in range(person.store_visits):
        ts = person.start + rng.randrange(SPAN_DAYS * DAY_MS)
        phone = b.phone_variant(person.phone or "")
        b.add(person.pid, ts, "track", source="store-pos", traits={"phone": phone})
    if person.placeholder_store:
        ts = person.start + rng.randrange(SPAN_DAYS * DAY_MS)
        b.add(person.pid, ts, "track", source="store-pos", traits={"phone": LISTED_PLACEHOLDER_PHONE})


def _crm(b: _Builder, person: _Person) -> None:
    rng = b.rng
    ts = EPOCH_MS + rng.randrange(SPAN_DAYS) * DAY_MS + 2 * 3600 * 1000  # the nightly import
    traits = {"crm_id": person.crm_id or "", "email": b.email_variant(person.emails[0])}
    if person.phone and rng.random() < 0.5:
        traits["phone"] = b.phone_variant(person.phone)
    b.add(person.pid, ts, "identify", source="crm-import", traits=traits)


def _family_tablet(b: _Builder, pair: tuple[_Person, _Person]) -> None:
    """Two logged-in people on one tablet: each login takes the device over."""
    rng = b.rng
    device_id = str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()
    anon = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    ts = max(p.start for p in pair) + rng.randrange(5 * DAY_MS)
    last: _Person | None = None
    for _ in range(rng.randint(3, 8)):
        person = rng.choice(pair)
        if person is not last:
            b.add(person.pid, ts, "identify", source="app", user_id=person.user_id, anonymous_id=anon,
                  device_id=device_id)
            last = person
            logged_in = True
        else:
            logged_in = rng.random() < 0.5  # the app dropped the session: anonymous until next login
        for _ in range(rng.randint(1, 4)):
            ts += rng.randint(1, 5) * MINUTE_MS
            b.add(person.pid, ts, "screen", source="app", user_id=person.user_id if logged_in else None,
                  anonymous_id=anon, device_id=device_id)
        ts += rng.randint(2, 48) * 3600 * 1000


def generate(persons: int, seed: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """``persons`` people's traffic: events sorted by time (then message_id), and
    ``{message_id: true person id}``. Deterministic for (persons, seed)."""
    rng = random.Random(seed)
    b = _Builder(rng)
    used_phones: set[str] = set()
    people = [_person(rng, i, used_phones) for i in range(persons)]
    accounts = [p for p in people if p.user_id]
    # enough people type the unlisted shared email for the frequency guard to have to act
    for person in rng.sample(accounts, k=min(len(accounts), max(5, len(accounts) // 50))):
        person.shared_email = True
    for person in people:
        for n, anon in enumerate(person.browsers):
            _browser(b, person, anon, first_link=n == 0)
        if person.device:
            _app(b, person)
        if person.openid:
            _wechat(b, person)
        if person.store_visits or person.placeholder_store:
            _store(b, person)
        if person.crm_id:
            _crm(b, person)
        if person.shared_email:  # a sign-up form where they typed the shared address
            ts = person.start + rng.randrange(SPAN_DAYS * DAY_MS)
            b.add(person.pid, ts, "identify", source="web", user_id=person.user_id,
                  anonymous_id=person.browsers[0], traits={"email": UNLISTED_SHARED_EMAIL})
    households = rng.sample(accounts, k=(len(accounts) // 20) * 2) if len(accounts) >= 40 else accounts[:2]
    for i in range(0, len(households) - 1, 2):
        _family_tablet(b, (households[i], households[i + 1]))
    b.events.sort(key=lambda e: (e["timestamp"], e["message_id"]))
    return b.events, b.truth


def squeeze(events: list[dict[str, Any]], start_ms: int, span_ms: int) -> list[dict[str, Any]]:
    """``events`` (sorted by time) moved into ``[start_ms, start_ms + span_ms]``, spacing kept in
    proportion. Receipt and original times move with the timestamp: the profile engine files an
    event no later than its receipt plus a small skew, so a timestamp moved alone would be filed
    under its old receipt time (the generator's 2025 dates)."""
    if not events:
        return []
    first, last = events[0]["timestamp"], events[-1]["timestamp"]
    spread = max(1, last - first)
    out = []
    for event in events:
        ts = start_ms + (event["timestamp"] - first) * span_ms // spread
        moved = {**event, "timestamp": ts, "original_timestamp": ts}
        if event.get("received_at") is not None:
            moved["received_at"] = ts + (event["received_at"] - event["timestamp"])
        out.append(moved)
    return out
