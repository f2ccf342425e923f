-- Operator actions on the OneID graph, each atomic (graph_lib.lua is prepended).
--
-- ARGV[3] op (OP_UNMERGE, OP_DELETE, OP_TOMBSTONE, OP_PURGE, OP_EDGES, OP_COLLECT, OP_BACKFILL:
-- identity/layout.py), then per op:
--   unmerge  ARGV[4] oneid, ARGV[5] type, ARGV[6] value, ARGV[7] actor, ARGV[8] its pseudonym, ARGV[9] person key,
--            ARGV[10] JSON [anonymous types]
--   delete   ARGV[4] oneid, ARGV[5] actor, ARGV[6] JSON {"type:value": [pseudonym, previous pseudonym
--            while a secret is rotated]} of its identifiers,
--            ARGV[7] suppression window (ms)
--   tombstone ARGV[4] survivor, ARGV[5] JSON [oneid, ...]
--   purge    ARGV[4] JSON [suppression field, ...]
--   edges    ARGV[4] oneid
--   collect  ARGV[4] cutoff (ms: last seen before it is idle), ARGV[5] most profiles, ARGV[6] JSON [anonymous types]
--   backfill ARGV[4] JSON [oneid, ...], ARGV[5] last-seen time to record (ms), ARGV[6] JSON [anonymous types]
-- Errors are returned as error replies starting with a code: E_NOT_FOUND, E_NOT_LINKED, E_UNMERGE_ALL.

local bad = check_meta()
if bad then return redis.error_reply(bad) end
local op = ARGV[3]

local function live(oneid)
  local o = resolve_alias(oneid)
  if call('EXISTS', pkey(o)) == 0 then return nil end
  return o
end

local function recount(key, members, names, pk)
  local c, person = {}, nil
  for _, m in ipairs(names) do
    local t, v = split_tv(m)
    c[t] = (c[t] or 0) + 1
    if t == pk and (person == nil or v < person) then person = v end
  end
  local stale = {}
  for _, f in ipairs(call('HKEYS', key)) do
    if sub(f, 1, #F_COUNT) == F_COUNT then stale[#stale + 1] = f end
  end
  chunked('HDEL', key, stale)
  local fv = {}
  for t, n in pairs(c) do
    fv[#fv + 1] = F_COUNT .. t
    fv[#fv + 1] = n
  end
  hset_many(key, fv)
  if person then call('HSET', key, F_PERSON, person) else call('HDEL', key, F_PERSON) end
end

-- names: a list of "type:value"
local function all_anonymous(names)
  for _, m in ipairs(names) do
    if not ANON_T[split_tv(m)] then return false end
  end
  return true
end

-- After a split: part of an anonymous profile is anonymous (same last-seen); a side of a
-- stronger one that kept only anonymous identifiers becomes collectable (last seen: now).
local function split_anonymous(o, kept, new, moved, now)
  local seen = anon_seen(o)
  if seen then
    anon_set(new, seen)
    return
  end
  if all_anonymous(kept) then anon_set(o, now) end
  if all_anonymous(moved) then anon_set(new, now) end
end

if op == OP_UNMERGE then
  local t, v, actor, vhash, pk = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
  for _, a in ipairs(cjson.decode(ARGV[10])) do ANON_T[a] = true end
  local o = live(ARGV[4])
  if not o then return redis.error_reply(E_NOT_FOUND .. ' no live profile ' .. ARGV[4]) end
  local xtv = t .. ':' .. v
  if owner_tv(t, v, xtv) ~= o then return redis.error_reply(E_NOT_LINKED .. ' identifier not in ' .. o) end
  local members, meta, n = load_profile(o)
  local children, byh = {}, by_hash(members)
  for _, m in ipairs(sorted_keys(members)) do
    local p = byh[rec_of(members, m)[3] or '']
    if p and p ~= m then
      children[p] = children[p] or {}
      table.insert(children[p], m)
    end
  end
  local moved, inside, k = {xtv}, {[xtv] = true}, 1
  while k <= #moved do
    for _, c in ipairs(children[moved[k]] or {}) do
      if not inside[c] then
        inside[c] = true
        moved[#moved + 1] = c
      end
    end
    k = k + 1
  end
  if #moved >= n then
    return redis.error_reply(E_UNMERGE_ALL .. ' every identifier of ' .. o .. ' came through this one')
  end
  table.sort(moved)
  local new = new_id(vhash)
  local nkey, okey = pkey(new), pkey(o)
  local fv, refs, seen_msg, created, kept = {}, {}, {}, nil, {}
  for _, m in ipairs(moved) do
    local r = rec_of(members, m)
    if m == xtv then r = {r[1], r[2], '', r[4] or 0, r[5], r[6], r[7]} end
    fv[#fv + 1] = m
    fv[#fv + 1] = pack(r)
    if created == nil or r[1] < created then created = r[1] end
    if not seen_msg[r[2]] then
      seen_msg[r[2]] = true
      refs[#refs + 1] = {expand_msg(r[2]), r[1], r[5] or -1, r[6] or -1}
    end
    local mt, mv = split_tv(m)
    set_owner(mt, mv, m, new)
    call('HDEL', okey, m)
  end
  hset_many(nkey, fv)
  for _, m in ipairs(sorted_keys(members)) do
    if not inside[m] then kept[#kept + 1] = m end
  end
  recount(okey, members, kept, pk)
  recount(nkey, members, moved, pk)
  local nm = meta[F_NEVER] and (meta[F_NEVER] .. ' ' .. new) or new
  call('HSET', okey, F_NEVER, nm)
  call('HSET', nkey, F_CREATED, created, F_NEVER, o)
  if meta[F_UNTRUSTED] then call('HSET', nkey, F_UNTRUSTED, 1) end
  local now = now_ms()
  split_anonymous(o, kept, new, moved, now)
  anon_flush()
  call('XADD', AUDIT, '*', 'action', 'unmerge', 'actor', actor, 'time', now, 'oneid', o,
    'new_oneid', new, 'type', t, 'value_hash', vhash, 'moved', #moved, 'events', #refs)
  -- the merges topic must hear of it (the lake moves the identifiers' history): kept until acknowledged
  call('HSET', B .. K_MERGE_OUTBOX, new, o .. '|' .. call('TIME')[1] .. '|unmerge|' .. cjson.encode(moved))
  return cjson.encode({[R_ONEID] = o, [R_NEW] = new, [R_IDS] = moved, [R_EVENTS] = refs, [R_TIME] = now})
end

-- An erasure's graph half, atomic: the survivor and every alias are tombstoned (never issued
-- again; the profile scripts refuse them), the identifiers leave the index and are suppressed
-- until now + ARGV[7] ms, merge-outbox entries naming the person go, and the erasure record
-- keeps the aliases and the identifiers' hashes for the rest of the erasure (other stores).
if op == OP_DELETE then
  local actor, hashes, window = ARGV[5], cjson.decode(ARGV[6]), tonumber(ARGV[7]) or 0
  local o = live(ARGV[4])
  if not o then return redis.error_reply(E_NOT_FOUND .. ' no live profile ' .. ARGV[4]) end
  local members, meta = load_profile(o)
  local names = sorted_keys(members)
  for _, m in ipairs(names) do
    if not hashes[m] then return cjson.encode({[R_RETRY] = names}) end
  end
  local now = now_ms()
  local stone = now .. '|' .. o
  local aliases, gone = {}, {[o] = true}
  for f in pairs(meta) do
    if sub(f, 1, #F_ALIAS) == F_ALIAS then
      local a = sub(f, #F_ALIAS + 1)
      aliases[#aliases + 1] = a
      gone[a] = true
    end
  end
  table.sort(aliases)
  local stones = {o, stone}
  for _, a in ipairs(aliases) do
    stones[#stones + 1] = a
    stones[#stones + 1] = stone
  end
  hset_many(TOMB, stones)
  local sup, hashed = {}, {}
  for _, m in ipairs(names) do
    local t, v = split_tv(m)
    if owner_tv(t, v, m) == o then del_owner(t, v, m) end
    local hs = hashes[m]
    sup[#sup + 1] = t .. ':' .. hs[1]
    sup[#sup + 1] = now + window
    for _, h in ipairs(hs) do
      call('DEL', fkey(t, h))
      hashed[#hashed + 1] = t .. ':' .. h
    end
  end
  if #sup > 0 then hset_many(SKEY, sup) end
  -- merge records not yet acknowledged by Kafka that name the person are never re-sent
  local outbox, stale = B .. K_MERGE_OUTBOX, {}
  local flat = call('HGETALL', outbox)
  for i = 1, #flat, 2 do
    local survivor = string.match(flat[i + 1], '^([^|]*)')
    if gone[flat[i]] or gone[survivor] then stale[#stale + 1] = flat[i] end
  end
  chunked('HDEL', outbox, stale)
  drop_profile(o, meta)
  anon_flush()
  local record = B .. K_ERASURE .. o
  call('HSET', record, X_ALIASES, #aliases > 0 and cjson.encode(aliases) or '[]',
    X_HASHES, #hashed > 0 and cjson.encode(hashed) or '[]',
    X_STEP .. 'graph', cjson.encode({identifiers = #names, aliases = #aliases, merge_outbox = #stale,
      suppressed_until = now + window}))
  call('XADD', AUDIT, '*', 'action', 'delete', 'actor', actor, 'time', now, 'oneid', o,
    'requested', ARGV[4], 'identifiers', #names, 'aliases', #aliases)
  return cjson.encode({[R_ONEID] = o, [R_IDS] = names, [R_ALIASES] = aliases, [R_TIME] = now,
    [R_OUTBOX] = #stale})
end

-- Tombstones for OneIDs the graph no longer holds (profile state without identity, aliases only
-- the profile store knew): ARGV[4] survivor, ARGV[5] JSON [oneid, ...]; an existing tombstone
-- keeps its time. Answers the time written.
if op == OP_TOMBSTONE then
  local now = now_ms()
  for _, o in ipairs(cjson.decode(ARGV[5])) do
    call('HSETNX', TOMB, o, now .. '|' .. ARGV[4])
  end
  return cjson.encode({[R_TIME] = now})
end

-- Suppression entries whose end has passed leave the hash (ARGV[4]: JSON [field, ...] to look
-- at): events received after it start a new person, with a new OneID.
if op == OP_PURGE then
  local now, n = now_ms(), 0
  for _, f in ipairs(cjson.decode(ARGV[4])) do
    local until_ms = call('HGET', SKEY, f)
    if until_ms and tonumber(until_ms) < now then
      call('HDEL', SKEY, f)
      n = n + 1
    end
  end
  return cjson.encode({[R_COUNT] = n})
end

-- Idle anonymous profiles leave the graph (index entries, aliases, the profile, its place in the
-- anonymous set), each atomically: not an erasure (no suppression, no audit entry), so a later
-- event of the same anonymous id simply starts a new profile. A set entry whose profile holds
-- something stronger (or is gone) is only dropped from the set.
if op == OP_COLLECT then
  for _, a in ipairs(cjson.decode(ARGV[6])) do ANON_T[a] = true end
  -- the cutoff as Python wrote it: Lua would print a large number as %.14g
  local idle = call('ZRANGEBYSCORE', ANON, '-inf', '(' .. ARGV[4], 'LIMIT', 0, tonumber(ARGV[5]))
  local out = {}
  for _, o in ipairs(idle) do
    anon_set(o, false)
    local members, meta, n = load_profile(o)
    if n > 0 and not meta[F_PERSON] and only_anonymous(members) then
      for m in pairs(members) do
        local mt, mv = split_tv(m)
        if owner_tv(mt, mv, m) == o then del_owner(mt, mv, m) end
      end
      drop_profile(o, meta)
      out[#out + 1] = o
    end
  end
  anon_flush()
  if #out > 0 then call('HINCRBY', META, M_COLLECTED, #out) end
  return cjson.encode({[R_COLLECTED] = out, [R_COUNT] = #idle})
end

-- Profiles written before the anonymous set existed join it (last seen: the time given, not their
-- old link times, which could make an active visitor look idle).
if op == OP_BACKFILL then
  for _, a in ipairs(cjson.decode(ARGV[6])) do ANON_T[a] = true end
  local seen, added = tonumber(ARGV[5]), 0
  for _, o in ipairs(cjson.decode(ARGV[4])) do
    if not anon_seen(o) then
      local members, meta, n = load_profile(o)
      if n > 0 and not meta[F_PERSON] and only_anonymous(members) then
        anon_set(o, seen)
        added = added + 1
      end
    end
  end
  anon_flush()
  return cjson.encode({[R_COUNT] = added})
end

if op == OP_EDGES then
  local o = live(ARGV[4])
  if not o then return redis.error_reply(E_NOT_FOUND .. ' no live profile ' .. ARGV[4]) end
  local members = load_profile(o)
  local byh = by_hash(members)
  local out = {}
  for _, m in ipairs(sorted_keys(members)) do
    local r = rec_of(members, m)
    local parent = byh[r[3] or ''] or ''
    out[#out + 1] = {m, r[1], expand_msg(r[2]), parent, r[5] or -1, r[6] or -1, since_of(r), r[7] ~= UNTRUSTED}
  end
  return cjson.encode({[R_ONEID] = o, [R_EDGES] = out})
end

return redis.error_reply(E_UNKNOWN_OP .. ' ' .. tostring(op))
