-- OneID graph: helpers shared by graph.lua (resolve a batch) and graph_admin.lua (unmerge,
-- delete, edges). identity/graph.py prepends this file to each script before loading it, after
-- the constants generated from identity/layout.py (K_* keys, F_* profile fields, M_* meta fields,
-- C_* rules fields, R_* reply fields, OP_* operations, WHY_* reasons, E_* error codes), which
-- also documents the key layout.
--
-- KEYS[1]  the graph's meta key (declared so that a Redis Cluster routes the script to the
--          slot of the graph's hash tag; every other key carries the same tag)
-- ARGV[1]  key base: <prefix>{oneid}:
-- ARGV[2]  index buckets (fixed for the life of the graph, recorded in the meta key)

local B = ARGV[1]
local NB = tonumber(ARGV[2])
local META = KEYS[1]
local call = redis.call
local sha1 = redis.sha1hex
local sub, find = string.sub, string.find
local pack, unpack_rec = cmsgpack.pack, cmsgpack.unpack
local SKEY = B .. K_SUPPRESSION
local AUDIT = B .. K_AUDIT
local ANON = B .. K_ANONYMOUS
local TOMB = B .. K_ERASED
-- the anonymous types (type -> true): set by each script from its arguments
local ANON_T = {}
-- Most values one variadic command gets: Lua's unpack fails near 8,000 values ("too many
-- results to unpack"), and a script failing on a big input would be retried forever.
local CHUNK = 1000

local function bucket(v)
  return tonumber(sub(sha1(v), 1, 8), 16) % NB
end

local function ikey(t, v) return B .. K_INDEX .. t .. ':' .. bucket(v) end
local function pkey(o) return B .. K_PROFILE .. o end
local function akey(o) return B .. K_ALIAS .. bucket(o) end
-- h: the identifier's keyed pseudonym (touchstream/pseudonyms.py), computed by graph.py
local function fkey(t, h) return B .. K_GUARD .. t .. ':' .. sub(h, 1, 16) end

local function split_tv(tv)
  local i = find(tv, ':', 1, true)
  return sub(tv, 1, i - 1), sub(tv, i + 1)
end

local function check_meta()
  local nb = call('HGET', META, M_BUCKETS)
  if not nb then
    call('HSET', META, M_BUCKETS, NB, M_VERSION, LAYOUT_VERSION)
  elseif tonumber(nb) ~= NB then
    return E_GRAPH_STATE .. ' index_buckets is ' .. nb .. ' in Redis but ' .. NB .. ' in the rules'
  end
  return nil
end

-- identifier -> OneID, cached for the script run (write-through)
local owners = {}
local function owner_tv(t, v, tv)
  local o = owners[tv]
  if o == nil then
    o = call('HGET', ikey(t, v), v)
    owners[tv] = o
  end
  return o
end
local function set_owner(t, v, tv, o)
  owners[tv] = o
  call('HSET', ikey(t, v), v, o)
end
local function del_owner(t, v, tv)
  owners[tv] = false
  call('HDEL', ikey(t, v), v)
end

-- cmd key values... in chunks of at most CHUNK values (even: field/value pairs stay whole);
-- the integer replies summed. Every variadic call over a list of any size goes through here.
local function chunked(cmd, key, list)
  local n, total = #list, 0
  for i = 1, n, CHUNK do
    total = total + call(cmd, key, unpack(list, i, math.min(i + CHUNK - 1, n)))
  end
  return total
end

local function hset_many(key, fv)
  return chunked('HSET', key, fv)
end

-- HMGET in chunks; the answers concatenated (false for a missing field)
local function hmget_many(key, fields)
  local out, n = {}, #fields
  for i = 1, n, CHUNK do
    local got = call('HMGET', key, unpack(fields, i, math.min(i + CHUNK - 1, n)))
    for j = 1, #got do out[#out + 1] = got[j] end
  end
  return out
end

local function words(s)
  local out = {}
  if s then
    for w in string.gmatch(s, '%S+') do out[#out + 1] = w end
  end
  return out
end

local function resolve_alias(o)
  for _ = 1, 16 do
    local s = call('HGET', akey(o), o)
    if not s then return o end
    o = s
  end
  return o
end

-- members: "type:value" -> packed string or unpacked record; meta: "!..." -> string
local function load_profile(o)
  local flat = call('HGETALL', pkey(o))
  local members, meta, n = {}, {}, 0
  for i = 1, #flat, 2 do
    local f = flat[i]
    if sub(f, 1, #F_MARK) == F_MARK then
      meta[f] = flat[i + 1]
    else
      members[f] = flat[i + 1]
      n = n + 1
    end
  end
  return members, meta, n
end

local function rec_of(members, tv)
  local r = members[tv]
  if type(r) == 'string' then
    r = unpack_rec(r)
    members[tv] = r
  end
  return r
end

-- when the identifier joined its current person (a re-rooted edge keeps the older event)
local function since_of(r)
  local since = r[4]
  if since and since ~= 0 then return since end
  return r[1]
end

local function set_since(r, ts)
  r[4] = (r[1] ~= ts) and ts or 0
end

-- r marked UNTRUSTED (only untrusted events asserted the identifier) or not; the elements before
-- the mark are filled so the table stays an array (cmsgpack packs a table with holes as a map)
local function with_trust(r, untrusted)
  if untrusted then
    r[4], r[5], r[6], r[7] = r[4] or 0, r[5] or -1, r[6] or -1, UNTRUSTED
  else
    r[7] = nil
  end
  return r
end

-- an edge names its parent by a short hash of "type:value"
local function ph(tv)
  return sub(sha1(tv), 1, 8)
end

local function by_hash(members)
  local out = {}
  for m in pairs(members) do out[ph(m)] = m end
  return out
end

local UUID = '^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$'
local function hex_byte(h) return string.char(tonumber(h, 16)) end
local function byte_hex(c) return string.format('%02x', string.byte(c)) end

local function compact_msg(msg)
  if #msg == 36 and string.find(msg, UUID) and msg == string.lower(msg) then
    return '\0' .. string.gsub(string.gsub(msg, '-', ''), '%x%x', hex_byte)
  end
  return msg
end

local function expand_msg(s)
  if #s == 17 and string.byte(s, 1) == 0 then
    local h = string.gsub(sub(s, 2), '.', byte_hex)
    return sub(h, 1, 8) .. '-' .. sub(h, 9, 12) .. '-' .. sub(h, 13, 16) .. '-' .. sub(h, 17, 20) .. '-' .. sub(h, 21)
  end
  return s
end

local function packed(r)
  if type(r) == 'string' then return r end
  return pack(r)
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- A fresh OneID: a hash of the creating identifier's keyed pseudonym (seed; nothing of the
-- identifier can be recovered from it without the secret), probed past ids already in use so
-- that replays agree and an old id (an alias, a split-off profile, an erased person's) is never
-- reused.
local function new_id(seed)
  for n = 0, 64 do
    local cand = ONEID_PREFIX .. sub(sha1(n == 0 and seed or (seed .. '#' .. n)), 1, 16)
    if call('EXISTS', pkey(cand)) == 0 and not call('HGET', akey(cand), cand)
        and call('HEXISTS', TOMB, cand) == 0 then
      return cand
    end
  end
  error('no free OneID for an identifier after 64 probes')
end

-- The anonymous set, cached for the run: OneID -> last seen (ms), false when not in the set.
-- Changes stay in the cache until anon_flush(), which each script calls once before it answers:
-- one ZADD or ZREM per changed profile, however many of its events the batch holds.
local anon_cache, anon_dirty = {}, {}
local function anon_seen(o)
  local s = anon_cache[o]
  if s == nil then
    s = tonumber(call('ZSCORE', ANON, o)) or false
    anon_cache[o] = s
  end
  return s
end

local function anon_set(o, seen)
  anon_cache[o] = seen
  anon_dirty[o] = true
end

local function anon_flush()
  for o in pairs(anon_dirty) do
    local s = anon_cache[o]
    if s then call('ZADD', ANON, s, o) else call('ZREM', ANON, o) end
  end
  anon_dirty = {}
end

local function now_ms()
  local t = call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A profile emptied by moves or the frequency guard is removed with its aliases.
local function drop_profile(o, meta)
  for f in pairs(meta) do
    if sub(f, 1, #F_ALIAS) == F_ALIAS then
      local a = sub(f, #F_ALIAS + 1)
      call('HDEL', akey(a), a)
    end
  end
  call('DEL', pkey(o))
  anon_set(o, false)
end

-- True when every member ("type:value" keys of members, except skip) is of an anonymous type.
local function only_anonymous(members, skip)
  for m in pairs(members) do
    if m ~= skip and not ANON_T[split_tv(m)] then return false end
  end
  return true
end

-- Children of a removed identifier hang on its parent, so the profile stays one tree.
local function splice_out(o, tv, pk)
  local members, meta, n = load_profile(o)
  local xr = rec_of(members, tv)
  if xr == nil then return end
  local parent = xr[3] or ''
  local mine = ph(tv)
  local changed = {}
  for m in pairs(members) do
    if m ~= tv then
      local r = rec_of(members, m)
      if r[3] == mine then
        r[3] = parent
        changed[#changed + 1] = m
        changed[#changed + 1] = pack(r)
      end
    end
  end
  if n <= 1 then
    drop_profile(o, meta)
    return
  end
  if #changed > 0 then hset_many(pkey(o), changed) end
  local t, v = split_tv(tv)
  call('HDEL', pkey(o), tv)
  call('HINCRBY', pkey(o), F_COUNT .. t, -1)
  -- losing its last non-anonymous identifier makes the profile collectable (last seen: now)
  if not ANON_T[t] and only_anonymous(members, tv) and not anon_seen(o) then anon_set(o, now_ms()) end
  if t == pk and meta[F_PERSON] == v then
    local other = nil
    for m in pairs(members) do
      if m ~= tv and sub(m, 1, #pk + 1) == pk .. ':' then
        local _, mv = split_tv(m)
        if other == nil or mv < other then other = mv end
      end
    end
    if other then call('HSET', pkey(o), F_PERSON, other) else call('HDEL', pkey(o), F_PERSON) end
  end
end
