-- Profile state in Redis: one script, every command in it, so one SHA and one NOSCRIPT path.
-- profiles/script.py builds it: the layout constants (profiles/layout.py), this file (shared
-- helpers; lib_segments.lua: segment membership), then one file per command (read, apply, due,
-- merge, delete, segdue, segset, segscan, seed) and unknown.lua.
--
--   ARGV[1] = command, ARGV[2] = key prefix; the rest depends on the command:
--   read   ids...                          -> {{asked, resolved, main, transient, erased}, ...}
--   apply  payload(JSON)                   -> {fired indexes, applied, replayed, cooled, dups,
--                                              segment record lines, segment conflicts, refused ids}
--   due    watermark limit partitions...   -> {{partition, member, score}...}, {{id, main, transient}...}
--   merge  survivor merged meta(JSON)      -> {survivor, merged, fields moved (-1: refused, erased),
--                                              segment record lines}
--   delete id                              -> keys deleted
--   erase  ids...                          -> {keys deleted, timers, outbox entries, fired keys, ids,
--                                              segment memberships}
--   segdue now lease limit segments...     -> {{{id, main}...}, segment record lines}
--   segset segment now reason changes(JSON) -> segment record lines
--   segscan fingerprint now count         -> {segment timers added, 1 when the scan is done}
--   seed   payload(JSON)                   -> seeded | same | changed | missing (a backfill)
--
-- Keys and fields are documented in profiles/layout.py. Keys of one profile share the hash tag
-- {oneid}; `x` marks that the transient hash exists, so `read` skips it for most profiles; the
-- history is a string (~200 bytes less than a one-element list, and most profiles have 0-2).
-- The commands touch the keys of many profiles (one call per batch), which a single Redis
-- or a cluster adapter grouping by hash slot can serve; keys are built here from the prefix.

local cmd = ARGV[1]
local P = ARGV[2]

local function mkey(id) return P .. PROFILE_KEY .. '{' .. id .. '}' end
local function xkey(id) return mkey(id) .. TRANSIENT_SUFFIX end
local function hkey(id) return mkey(id) .. HISTORY_SUFFIX end
local function rkey(id) return mkey(id) .. REDIRECT_SUFFIX end
local function dkey(p) return P .. DUE_KEY .. p end
local DSET = P .. DUE_SET_KEY
local TOMB = P .. ERASED_KEY

-- An erased (tombstoned) OneID: no state is ever created under it again. One EXISTS per run
-- while nobody was ever erased.
local any_erased = nil
local function erased(id)
  if any_erased == nil then any_erased = redis.call('EXISTS', TOMB) == 1 end
  return any_erased and redis.call('HEXISTS', TOMB, id) == 1
end

-- Lua's unpack fails past ~8,000 values, and how many fields a batch touches is up to the
-- clients (traits, tags, fired keys): every variadic command goes through call_chunked.
local CHUNK = 1000

-- redis.call(cmd, [key,] list[i..i+CHUNK-1]) for each slice of list; the replies, in order.
-- Lists of field/value pairs stay aligned because CHUNK is even.
local function call_chunked(cmd, key, list)
  local replies = {}
  for i = 1, #list, CHUNK do
    local last = math.min(i + CHUNK - 1, #list)
    if key then
      replies[#replies + 1] = redis.call(cmd, key, unpack(list, i, last))
    else
      replies[#replies + 1] = redis.call(cmd, unpack(list, i, last))
    end
  end
  return replies
end

local function fmt(x)
  if x == math.floor(x) and math.abs(x) < 1e15 then return string.format('%d', x) end
  return string.format('%.15g', x)
end

-- "<ms base 36>|<payload>" (traits, first/last values)
local function msof(s) return tonumber(string.match(s, '^([0-9a-z]+)|'), 36) end

local function resolve(id)
  for _ = 1, 8 do
    local nxt = redis.call('GET', rkey(id))
    if not nxt then return id end
    id = nxt
  end
  return id
end

-- a hash loaded once, changed in Lua, written back once
local function load(key)
  local flat = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return {key = key, h = h, set = {}, del = {}, flat = flat}
end
-- a hash of which only the named fields are loaded
local function load_fields(key, fields)
  local h = {}
  local n = 0
  for _, values in ipairs(call_chunked('HMGET', key, fields)) do
    for j = 1, #values do
      n = n + 1
      if values[j] then h[fields[n]] = values[j] end
    end
  end
  return {key = key, h = h, set = {}, del = {}, flat = {}}
end
local function hset(o, f, v) o.h[f] = v; o.set[f] = true; o.del[f] = nil end
local function hdel(o, f) o.h[f] = nil; o.del[f] = true; o.set[f] = nil end
local function flush(o)
  local args = {}
  for f in pairs(o.set) do
    args[#args + 1] = f
    args[#args + 1] = o.h[f]
  end
  call_chunked('HSET', o.key, args)
  local dels = {}
  for f in pairs(o.del) do dels[#dels + 1] = f end
  call_chunked('HDEL', o.key, dels)
  o.set = {}; o.del = {}
end

local function bor_hex(a, b)
  local out = {}
  for i = 1, 16 do
    out[i] = string.format('%x', bit.bor(tonumber(a:sub(i, i), 16), tonumber(b:sub(i, i), 16)))
  end
  return table.concat(out)
end

-- the same fold per kind as profiles/aggregates.py combine()
local function combine(kind, cur, val)
  if cur == nil then return val end
  if kind == 'n' then
    local total = (tonumber(cur) or 0) + (tonumber(val) or 0)
    -- never store a non-finite sum (inf - inf is nan, nan ~= nan): keep what was there
    if total ~= total or total == math.huge or total == -math.huge then return cur end
    return fmt(total)
  end
  if kind == 'mn' then if tonumber(val) < tonumber(cur) then return val end return cur end
  if kind == 'mx' then if tonumber(val) > tonumber(cur) then return val end return cur end
  if kind == 'f' then if msof(val) < msof(cur) then return val end return cur end
  if kind == 'l' then if msof(val) >= msof(cur) then return val end return cur end
  if kind == 'u' then return bor_hex(cur, val) end
  return cur
end

local function decay(elapsed, hl)
  if hl <= 0 or elapsed <= 0 then return 1.0 end
  return 2 ^ (-elapsed / hl)
end

local function parse_score(s)
  return tonumber(string.match(s, '^([^|]+)|')), tonumber(string.match(s, '|(%-?%d+)$'))
end

-- the same as profiles/scoring.py add_points()
local function add_points(s, pts, ts, hl)
  if s == nil then return string.format('%.10g', pts) .. '|' .. fmt(ts) end
  local v, ref = parse_score(s)
  if ts >= ref then
    v = v * decay(ts - ref, hl) + pts
    ref = ts
  else
    v = v + pts * decay(ref - ts, hl)
  end
  return string.format('%.10g', v) .. '|' .. fmt(ref)
end

local function parse_member(member)
  local kind = member:sub(1, 1)
  if string.find(NO_REF_TIMERS, kind, 1, true) then return kind, member:sub(3), nil end
  local id, ref = string.match(member:sub(3), '^(.*)|([^|]*)$')
  return kind, id, ref
end

-- the first n lines of text
local function head_lines(text, n)
  local count, pos = 0, 0
  while true do
    local nl = string.find(text, '\n', pos + 1, true)
    if not nl then return text end
    count = count + 1
    if count >= n then return string.sub(text, 1, nl - 1) end
    pos = nl
  end
end

-- Fired triggers also wait in the outbox (field "<oneid>\t<history entry>") until the stage
-- has them acknowledged by Kafka and removes them: a crash between this script and the produce
-- then delays a trigger (the sweep re-sends old outbox entries) instead of losing it.
local OUTBOX = P .. OUTBOX_KEY

local function push_history(id, entries, n)
  if #entries == 0 then return end
  for _, entry in ipairs(entries) do redis.call('HSET', OUTBOX, id .. OUTBOX_SEPARATOR .. entry, '1') end
  local newest = {}
  for i = #entries, 1, -1 do newest[#newest + 1] = entries[i] end
  local text = table.concat(newest, '\n')
  local cur = redis.call('GET', hkey(id))
  if cur and cur ~= '' then text = text .. '\n' .. cur end
  redis.call('SET', hkey(id), head_lines(text, n))
end

-- text matched literally by a SCAN/HSCAN MATCH pattern
local function glob(text) return (string.gsub(text, '[%*%?%[%]\\]', '\\%0')) end

local function zadd(p, score, member)
  redis.call('ZADD', dkey(p), score, member)
  redis.call('SADD', DSET, p)
end
