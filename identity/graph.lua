-- Resolve one batch of events to OneIDs in a single atomic run (graph_lib.lua is prepended).
--
-- ARGV[3]  rules (JSON, identity/rules.py script_config): C_PERSON_KEY person key type, C_TYPES
--          [[type, max, window_ms, repoint, max_persons], ...] in priority order (-1: none),
--          C_DEFAULT_PERSONS default max_persons, C_MAX_MEMBERS max identifiers per profile,
--          C_GUARD_MS frequency-guard set expiry (ms), C_ANONYMOUS [anonymous types]
-- ARGV[4]  "1" when every event also carries its identifiers' pseudonyms under the previous secret
--          (a rotation: suppression entries written under it still match)
-- ARGV[5]  events (JSON): [[message_id, ts_ms, partition, offset, trusted, [type, value, ...],
--          [pseudonym, ...], received_ms[, [previous pseudonym, ...]]], ...]: identifiers already
--          normalised, unblocked, de-duplicated and sorted by priority, each with its keyed
--          pseudonym (touchstream/pseudonyms.py: the seed of a OneID it creates, its guard set's
--          name, its suppression entry);
--          partition/offset -1 when unknown; trusted 1, or 0 for an event of an untrusted (browser)
--          key: it links identifiers marked UNTRUSTED, never merges two profiles that both hold
--          trusted identity (WHY_UNTRUSTED_MERGE), never re-points nor feeds the frequency guard;
--          a trusted event that disagrees with an UNTRUSTED identifier (it cannot join that
--          identifier's profile) takes the identifier over, and one that re-asserts it trusts it
-- ARGV[6]  receipt time (ms): last-seen time of anonymous-only profiles (idle is judged by arrival,
--          not by event time, so imported history is not collected the moment it lands)
-- Returns JSON {R_ONEIDS: [oneid or "" per event], R_MERGES: merges, R_REJECTIONS: rejections,
-- R_MOVES: moves}.

local cfg = cjson.decode(ARGV[3])
local PK = cfg[C_PERSON_KEY]
local DEFAULT_MP = cfg[C_DEFAULT_PERSONS]
local RULE, LIMITED, COUNT_FIELDS = {}, {}, {}
for _, r in ipairs(cfg[C_TYPES]) do
  RULE[r[1]] = {max = r[2], win = r[3], rep = r[4] == 1, mp = r[5]}
  if r[2] > 0 then
    LIMITED[#LIMITED + 1] = r[1]
    COUNT_FIELDS[#COUNT_FIELDS + 1] = F_COUNT .. r[1]
  end
end
for _, t in ipairs(cfg[C_ANONYMOUS]) do ANON_T[t] = true end
local MAX_MEMBERS = cfg[C_MAX_MEMBERS]
local GUARD_MS = cfg[C_GUARD_MS]
local with_previous = ARGV[4] == '1'
local REFRESH_MS = 300000
local SEEN_MS = tonumber(ARGV[6])

local bad = check_meta()
if bad then return redis.error_reply(bad) end
local use_sup = call('EXISTS', SKEY) == 1

local events = cjson.decode(ARGV[5])
local oneids, merges, rejections, moves = {}, {}, {}, {}
local aliased = {}
-- the profile created by the event being resolved (it is not in the anonymous set yet)
local created_now = nil
-- "oneid type:value" -> since, read once per run; forgotten whenever edges are rewritten
local known_since = {}

local function reject(ei, t, v, why)
  rejections[#rejections + 1] = {ei, t, v, why}
end

-- parent: the anchor's short hash ("" for a root)
local function new_rec(ev, parent)
  if not ev.cmsg then ev.cmsg = compact_msg(ev.msg) end
  if ev.u then return {ev.ts, ev.cmsg, parent, 0, ev.part or -1, ev.off or -1, UNTRUSTED} end
  if ev.part then return {ev.ts, ev.cmsg, parent, 0, ev.part, ev.off} end
  return {ev.ts, ev.cmsg, parent}
end

local function counts(o)
  local c = {}
  if #COUNT_FIELDS == 0 then return c end
  local vals = hmget_many(pkey(o), COUNT_FIELDS)
  for i, t in ipairs(LIMITED) do c[t] = tonumber(vals[i]) or 0 end
  return c
end

-- identifiers of type t linked to o within the window before ts (only needed past the total)
local function window_count(o, t, ts, window)
  local n, cursor, lo = 0, '0', ts - window
  repeat
    local res = call('HSCAN', pkey(o), cursor, 'MATCH', t .. ':*', 'COUNT', 1000)
    cursor = res[1]
    local kv = res[2]
    for i = 2, #kv, 2 do
      if since_of(unpack_rec(kv[i])) > lo then n = n + 1 end
    end
  until cursor == '0'
  return n
end

-- identifiers (F_MARK fields are not) in profile o (may be nil)
local function member_count(o)
  if not o then return 0 end
  local n = 0
  for _, f in ipairs(call('HKEYS', pkey(o))) do
    if sub(f, 1, #F_MARK) ~= F_MARK then n = n + 1 end
  end
  return n
end

-- Would profiles a and b (either may be nil) plus extra identifiers hold more than max_members?
-- HLEN bounds the count from above, so the exact count is only taken near the cap.
local function over_full(a, b, extra)
  local la = a and call('HLEN', pkey(a)) or 0
  local lb = b and call('HLEN', pkey(b)) or 0
  if la + lb + extra <= MAX_MEMBERS then return false end
  return member_count(a) + member_count(b) + extra > MAX_MEMBERS
end

-- Would profiles a and b (either may be nil) plus the npend pending identifiers (pend: counts
-- by type) break a limit?
local function violation(a, b, pend, npend, ts)
  local ca = a and counts(a)
  local cb = b and counts(b)
  for _, t in ipairs(LIMITED) do
    local rule = RULE[t]
    local base = pend[t] or 0
    local na, nb = ca and ca[t] or 0, cb and cb[t] or 0
    if base + na + nb > rule.max and rule.win > 0 then
      if na > 0 then na = window_count(a, t, ts, rule.win) end
      if nb > 0 then nb = window_count(b, t, ts, rule.win) end
    end
    if base + na + nb > rule.max then return WHY_LIMIT .. t end
  end
  if over_full(a, b, npend) then return WHY_PROFILE_FULL end
  return nil
end

-- Would one more identifier of type t fit into profile o (may be nil) plus the pending ones?
local function add_violation(o, pend, npend, t, ts)
  local rule = RULE[t]
  if rule and rule.max > 0 then
    local base = (pend[t] or 0) + 1
    local n = o and (tonumber(call('HGET', pkey(o), F_COUNT .. t)) or 0) or 0
    if base + n > rule.max and rule.win > 0 and n > 0 then n = window_count(o, t, ts, rule.win) end
    if base + n > rule.max then return WHY_LIMIT .. t end
  end
  if over_full(o, nil, npend + 1) then return WHY_PROFILE_FULL end
  return nil
end

-- Does profile o hold an identifier of a non-anonymous type that a trusted event asserted?
local function holds_trusted(o)
  local members = load_profile(o)
  for m in pairs(members) do
    if not ANON_T[split_tv(m)] and rec_of(members, m)[7] ~= UNTRUSTED then return true end
  end
  return false
end

local function never_merge(a, b)
  local na = call('HGET', pkey(a), F_NEVER)
  local nb = call('HGET', pkey(b), F_NEVER)
  if not na and not nb then return false end
  for _, x in ipairs(words(na)) do
    if resolve_alias(x) == b then return true end
  end
  for _, x in ipairs(words(nb)) do
    if resolve_alias(x) == a then return true end
  end
  return false
end

-- The identifiers of a profile without a person join the person now: their "since"
-- becomes this event's time, so later logins compare against it whatever the arrival order.
local function join_now(members, ts, changed)
  for m in pairs(members) do
    local r = rec_of(members, m)
    if since_of(r) ~= ts then
      set_since(r, ts)
      changed[m] = true
    end
  end
end

local function attach(o, t, v, tv, anchor, ev, fresh)
  local key = pkey(o)
  if ev.u then
    call('HSET', key, tv, pack(new_rec(ev, anchor and ph(anchor) or '')), F_UNTRUSTED, 1)
  else
    call('HSET', key, tv, pack(new_rec(ev, anchor and ph(anchor) or '')))
  end
  call('HINCRBY', key, F_COUNT .. t, 1)
  -- a stronger identifier: the profile is no longer anonymous (never collected from now on)
  if not ANON_T[t] and o ~= created_now then anon_set(o, false) end
  if t == PK and call('HSETNX', key, F_PERSON, v) == 1 and not fresh then
    known_since = {}
    local members = load_profile(o)
    local changed, fv = {}, {}
    join_now(members, ev.ts, changed)
    for m in pairs(changed) do
      fv[#fv + 1] = m
      fv[#fv + 1] = packed(members[m])
    end
    if #fv > 0 then hset_many(key, fv) end
  end
  set_owner(t, v, tv, o)
end

local function create(t, v, tv, ev, h)
  local o = new_id(h)
  created_now = o
  call('HSET', pkey(o), F_CREATED, ev.ts)
  attach(o, t, v, tv, nil, ev, true)
  return o
end

-- Re-root members' tree at x (reversing the path to its root; each edge keeps its event,
-- each identifier keeps the time it joined its person: element 6 when it differs from the
-- edge's) and hang x under the anchor with this event. Returns the set of changed members.
local function reroot(members, xtv, anchor, ev)
  local byh = by_hash(members)
  local path, seen, cur = {xtv}, {[xtv] = true}, xtv
  while true do
    local r = rec_of(members, cur)
    local p = r and byh[r[3] or '']
    if p == nil or seen[p] then break end
    path[#path + 1] = p
    seen[p] = true
    cur = p
  end
  local changed = {}
  for i = #path, 2, -1 do
    local child = rec_of(members, path[i - 1])
    local mine = rec_of(members, path[i])
    local r = {child[1], child[2], ph(path[i - 1]), 0, child[5], child[6]}
    set_since(r, since_of(mine))
    members[path[i]] = with_trust(r, mine[7] == UNTRUSTED)
    changed[path[i]] = true
  end
  -- an identifier once asserted by a trusted event stays trusted
  local old = rec_of(members, xtv)
  members[xtv] = with_trust(new_rec(ev, ph(anchor)), ev.u and old ~= nil and old[7] == UNTRUSTED)
  changed[xtv] = true
  return changed
end

-- Fold profiles T and o into the older one (creation time, then id): replays agree.
local function merge(T, o, xtv, anchor, ev, ei, t)
  known_since = {}
  local iT = call('HMGET', pkey(T), F_CREATED, F_PERSON, F_NEVER)
  local iO = call('HMGET', pkey(o), F_CREATED, F_PERSON, F_NEVER)
  local cT, cO = tonumber(iT[1]) or 0, tonumber(iO[1]) or 0
  local surv, lose, is, il
  if cT < cO or (cT == cO and T < o) then
    surv, lose, is, il = T, o, iT, iO
  else
    surv, lose, is, il = o, T, iO, iT
  end
  -- the loser leaves the anonymous set; the survivor stays in it only if both were anonymous
  local lseen = anon_seen(lose)
  anon_set(lose, false)
  if not lseen then
    anon_set(surv, false)
  else
    local sseen = anon_seen(surv)
    if sseen and lseen > sseen then anon_set(surv, lseen) end
  end
  local om, ometa = load_profile(o)
  local ochanged = reroot(om, xtv, anchor, ev)
  local tm, tmeta, tchanged = {}, {}, {}
  if surv == o or (iO[2] and not iT[2]) then tm, tmeta = load_profile(T) end
  if iT[2] and not iO[2] then
    join_now(om, ev.ts, ochanged)
  elseif iO[2] and not iT[2] then
    join_now(tm, ev.ts, tchanged)
  end
  local sm, schanged, lm, lmeta = om, ochanged, tm, tmeta
  if surv == T then sm, schanged, lm, lmeta = tm, tchanged, om, ometa end
  local skey = pkey(surv)
  local rewritten = {}
  for m in pairs(schanged) do
    rewritten[#rewritten + 1] = m
    rewritten[#rewritten + 1] = packed(sm[m])
  end
  if #rewritten > 0 then hset_many(skey, rewritten) end
  local fv, brought = {}, {}
  for _, m in ipairs(sorted_keys(lm)) do
    fv[#fv + 1] = m
    fv[#fv + 1] = packed(lm[m])
    brought[#brought + 1] = m
    local mt, mv = split_tv(m)
    set_owner(mt, mv, m, surv)
  end
  if #fv > 0 then hset_many(skey, fv) end
  for f, val in pairs(lmeta) do
    if sub(f, 1, #F_COUNT) == F_COUNT then
      local k = tonumber(val) or 0
      if k ~= 0 then call('HINCRBY', skey, f, k) end
    end
  end
  -- the loser and the ids merged into it before become aliases of the survivor (chains stay
  -- one hop); each is a field F_ALIAS..<id> of the survivor so that deleting it finds them all
  local meta, al = {F_ALIAS .. lose, ''}, {lose}
  for f in pairs(lmeta) do
    if sub(f, 1, #F_ALIAS) == F_ALIAS then
      meta[#meta + 1] = f
      meta[#meta + 1] = ''
      al[#al + 1] = sub(f, #F_ALIAS + 1)
    end
  end
  if not is[2] and il[2] then
    meta[#meta + 1] = F_PERSON
    meta[#meta + 1] = il[2]
  end
  if il[3] then
    meta[#meta + 1] = F_NEVER
    meta[#meta + 1] = is[3] and (is[3] .. ' ' .. il[3]) or il[3]
  end
  if lmeta[F_UNTRUSTED] then
    meta[#meta + 1] = F_UNTRUSTED
    meta[#meta + 1] = 1
  end
  hset_many(skey, meta)
  for _, a in ipairs(al) do
    call('HSET', akey(a), a, surv)
  end
  call('DEL', pkey(lose))
  merges[#merges + 1] = {ei, surv, lose, WHY_SHARED .. t, brought}
  -- Merge outbox (field: merged OneID, value: survivor): a replay after a crash finds the graph
  -- already merged and reports no merge, so the record could be lost between this script and
  -- Kafka. The resolve stage removes the entry once the merge record is acknowledged, and
  -- re-sends entries left behind by a crash.
  call('HSET', B .. K_MERGE_OUTBOX, lose, surv .. '|' .. call('TIME')[1])
  aliased[lose] = surv
  return surv
end

-- x (type t, in profile o) cannot join st.T: count the people it was seen with, then
-- re-point it (shared device/browser, newer login) or record the rejection.
local function conflict(st, ei, ev, t, v, tv, o, why, h)
  known_since = {}
  -- an untrusted event is no evidence about people: no guard count, no re-point
  if ev.u then
    reject(ei, t, v, why)
    return
  end
  local rule = RULE[t]
  if t ~= PK then
    local po = call('HGET', pkey(o), F_PERSON)
    local pt = st.pperson
    if st.T then pt = call('HGET', pkey(st.T), F_PERSON) or pt end
    if po and pt and po ~= pt then
      -- people are named by a hash of the person key salted with the value's pseudonym: no
      -- person key can be searched for without the secret
      local fk = fkey(t, h)
      call('SADD', fk, sub(sha1(h .. ':' .. po), 1, 12), sub(sha1(h .. ':' .. pt), 1, 12))
      call('PEXPIRE', fk, GUARD_MS)
      if call('SCARD', fk) > (rule and rule.mp or DEFAULT_MP) then
        splice_out(o, tv, PK)
        set_owner(t, v, tv, GUARDED)
        call('DEL', fk)
        reject(ei, t, v, WHY_FREQUENCY_GUARD)
        return
      end
    end
  end
  -- A trusted event that cannot join x's profile disagrees with an untrusted link of x: it takes
  -- x over. Otherwise only a login (the event carries its person) re-points a shared device or
  -- browser it is newer than; anonymous traffic never does.
  local raw = call('HGET', pkey(o), tv)
  local rec = raw and unpack_rec(raw)
  local takeover = rec and rec[7] == UNTRUSTED
  if takeover or (rule and rule.rep and why ~= WHY_UNMERGED and st.pk) then
    if not takeover and rec and ev.ts <= since_of(rec) then
      reject(ei, t, v, WHY_NEWER_LINK)
      return
    end
    local why2 = add_violation(st.T, st.pcount, #st.pend, t, ev.ts)
    if why2 then
      reject(ei, t, v, why2)
      return
    end
    splice_out(o, tv, PK)
    owners[tv] = false
    if st.T then
      attach(st.T, t, v, tv, st.anchor, ev)
      moves[#moves + 1] = {ei, t, v, o, st.T}
    else
      st.pend[#st.pend + 1] = {t, v, tv}
      st.pcount[t] = (st.pcount[t] or 0) + 1
      moves[#moves + 1] = {ei, t, v, o, ''}
      st.fill[#st.fill + 1] = #moves
    end
    return
  end
  reject(ei, t, v, why)
end

-- A logged-in event is fresh evidence that its shared-device/browser identifiers belong to
-- this person: their "since" moves up (at most every REFRESH_MS), so a login by someone else
-- that happened earlier, but arrives later, does not take them over.
-- A trusted event re-asserting identifiers of its profile that only untrusted events asserted
-- so far: they are trusted from now on.
local function trust_up(T, ids)
  local key = pkey(T)
  if not call('HGET', key, F_UNTRUSTED) then return end
  for j = 1, #ids, 2 do
    local tv = ids[j] .. ':' .. ids[j + 1]
    if owners[tv] == T then
      local raw = call('HGET', key, tv)
      local r = raw and unpack_rec(raw)
      if r and r[7] == UNTRUSTED then
        call('HSET', key, tv, pack(with_trust(r, false)))
      end
    end
  end
end

local function refresh_since(T, ids, ts)
  local has_pk = false
  for j = 1, #ids, 2 do
    if ids[j] == PK and owners[PK .. ':' .. ids[j + 1]] == T then has_pk = true end
  end
  if not has_pk then return end
  local key = pkey(T)
  for j = 1, #ids, 2 do
    local t = ids[j]
    local rule = RULE[t]
    if rule and rule.rep then
      local tv = t .. ':' .. ids[j + 1]
      local seen = T .. ' ' .. tv
      local since = known_since[seen]
      if owners[tv] == T and (since == nil or ts > since + REFRESH_MS) then
        local raw = call('HGET', key, tv)
        if raw then
          local r = unpack_rec(raw)
          since = since_of(r)
          if ts > since + REFRESH_MS then
            set_since(r, ts)
            call('HSET', key, tv, pack(r))
            since = ts
          end
          known_since[seen] = since
        end
      end
    end
  end
end

-- An event whose identifiers in T are all anonymous moves T's last-seen (receipt) time up when T is in
-- the anonymous set (a profile holding anything stronger is never added back); a profile this
-- event created from anonymous identifiers only joins the set.
local function seen_anonymous(T, ids)
  local ts = SEEN_MS
  for j = 1, #ids, 2 do
    if not ANON_T[ids[j]] and owners[ids[j] .. ':' .. ids[j + 1]] == T then return end
  end
  if T == created_now then
    anon_set(T, ts)
  else
    local seen = anon_seen(T)
    if seen and ts > seen then anon_set(T, ts) end
  end
end

local function resolve_event(ei, ev, ids, hs)
  local st = {T = nil, anchor = nil, pend = {}, pcount = {}, pperson = nil, pk = false, fill = {}}
  for j = 1, #ids, 2 do
    local t, v, h = ids[j], ids[j + 1], hs[(j + 1) / 2]
    local tv = t .. ':' .. v
    local o = owner_tv(t, v, tv)
    if o == GUARDED then
      reject(ei, t, v, WHY_FREQUENCY_GUARD)
    elseif not o then
      local why = add_violation(st.T, st.pcount, #st.pend, t, ev.ts)
      if why then
        reject(ei, t, v, why)
      else
        st.pend[#st.pend + 1] = {t, v, tv, h}
        st.pcount[t] = (st.pcount[t] or 0) + 1
        if t == PK then st.pperson, st.pk = v, true end
      end
    elseif o == st.T then
      if t == PK then st.pk = true end
    else
      local why = nil
      if st.T == nil then
        if #st.pend > 0 then why = violation(nil, o, st.pcount, #st.pend, ev.ts) end
      elseif never_merge(st.T, o) then
        why = WHY_UNMERGED
      elseif ev.u and holds_trusted(st.T) and holds_trusted(o) then
        why = WHY_UNTRUSTED_MERGE
      else
        why = violation(st.T, o, st.pcount, #st.pend, ev.ts)
      end
      if why then
        conflict(st, ei, ev, t, v, tv, o, why, h)
      elseif st.T == nil then
        st.T, st.anchor = o, tv
        if t == PK then st.pk = true end
      else
        st.T = merge(st.T, o, tv, st.anchor, ev, ei, t)
      end
    end
  end
  local first = 1
  if st.T == nil and #st.pend > 0 then
    local c = st.pend[1]
    st.T = create(c[1], c[2], c[3], ev, c[4])
    st.anchor = c[3]
    first = 2
  end
  for k = first, #st.pend do
    local p = st.pend[k]
    attach(st.T, p[1], p[2], p[3], st.anchor, ev)
  end
  for _, k in ipairs(st.fill) do moves[k][5] = st.T end
  if st.T then
    if not ev.u then
      trust_up(st.T, ids)
      refresh_since(st.T, ids, ev.ts)
    end
    seen_anonymous(st.T, ids)
  end
  return st.T
end

for ei = 1, #events do
  local e = events[ei]
  local ev = {msg = e[1], ts = e[2], u = e[5] == 0}
  if e[3] >= 0 then
    ev.part, ev.off = e[3], e[4]
  end
  local ids, hs = e[6], e[7]
  local suppressed = false
  if use_sup and #ids > 0 then
    -- judged by receipt (our clock), not by the event time a client chose: an event received up
    -- to the entry's end (erasure + the suppression window) belongs to the erased person
    local fields, received = {}, e[8] or SEEN_MS
    for j = 1, #hs do fields[j] = ids[2 * j - 1] .. ':' .. hs[j] end
    if with_previous then
      local old = e[9]
      for j = 1, #old do fields[#fields + 1] = ids[2 * j - 1] .. ':' .. old[j] end
    end
    local got = hmget_many(SKEY, fields)
    for j = 1, #got do
      if got[j] and tonumber(got[j]) >= received then suppressed = true end
    end
  end
  if suppressed then
    for j = 1, #ids, 2 do reject(ei, ids[j], ids[j + 1], WHY_SUPPRESSED) end
    oneids[ei] = ''
  else
    created_now = nil
    oneids[ei] = resolve_event(ei, ev, ids, hs) or ''
  end
end

-- an event that resolved to a profile merged later in the batch answers the survivor
for ei = 1, #oneids do
  local o = oneids[ei]
  for _ = 1, 64 do
    local s = aliased[o]
    if not s then break end
    o = s
  end
  oneids[ei] = o
end

anon_flush()
return cjson.encode({[R_ONEIDS] = oneids, [R_MERGES] = merges, [R_REJECTIONS] = rejections, [R_MOVES] = moves})
