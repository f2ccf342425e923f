-- Profile state in Redis: one script, five commands, so one SHA and one NOSCRIPT path.
--
--   ARGV[1] = command, ARGV[2] = key prefix; the rest depends on the command:
--   read   ids...                          -> {{asked, resolved, main, transient}, ...}
--   apply  payload(JSON)                   -> {fired indexes, applied, replayed, cooled, dups}
--   due    watermark limit partitions...   -> {{partition, member, score}...}, {{id, main, transient}...}
--   merge  survivor merged meta(JSON)      -> {survivor, merged, fields moved}
--   delete id                              -> keys deleted
--
-- Keys of one profile share the hash tag {oneid}:
--   <P>p:{id}     hash: the profile (fields documented in profiles/state.py; `x` marks that
--                 the transient hash exists, so `read` skips it for most profiles)
--   <P>p:{id}:x   hash: open page views (v:<sid>) and pending delayed triggers (d:<id>)
--   <P>p:{id}:h   string: fired triggers, one JSON line each, newest first, bounded (a string
--                 costs ~200 bytes less than a one-element list, and most profiles have 0-2)
--   <P>p:{id}:r   string: the OneID this one was merged into (expires)
--   <P>pdue:<partition>  zset of timers (v|id|sid, d|id|tid, i|id) scored by due time (ms)
--   <P>pdue              set of partitions that have timers
-- The commands touch the keys of many profiles (one call per batch), which a single Redis
-- or a cluster adapter grouping by hash slot can serve; keys are built here from the prefix.

local cmd = ARGV[1]
local P = ARGV[2]

local function mkey(id) return P .. 'p:{' .. id .. '}' end
local function xkey(id) return P .. 'p:{' .. id .. '}:x' end
local function hkey(id) return P .. 'p:{' .. id .. '}:h' end
local function rkey(id) return P .. 'p:{' .. id .. '}:r' end
local function dkey(p) return P .. 'pdue:' .. p end
local DSET = P .. 'pdue'

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
  if kind == 'i' then return kind, member:sub(3), nil end
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
local OUTBOX = P .. 'outbox'

local function push_history(id, entries, n)
  if #entries == 0 then return end
  for _, entry in ipairs(entries) do redis.call('HSET', OUTBOX, id .. '\t' .. entry, '1') end
  local newest = {}
  for i = #entries, 1, -1 do newest[#newest + 1] = entries[i] end
  local text = table.concat(newest, '\n')
  local cur = redis.call('GET', hkey(id))
  if cur and cur ~= '' then text = text .. '\n' .. cur end
  redis.call('SET', hkey(id), head_lines(text, n))
end

local function zadd(p, score, member)
  redis.call('ZADD', dkey(p), score, member)
  redis.call('SADD', DSET, p)
end

-- ---------------------------------------------------------------------------- read
if cmd == 'read' then
  local out = {}
  for i = 3, #ARGV do
    local id = resolve(ARGV[i])
    local main = redis.call('HGETALL', mkey(id))
    local x = {}
    for j = 1, #main, 2 do
      if main[j] == 'x' then x = redis.call('HGETALL', xkey(id)); break end
    end
    out[#out + 1] = {ARGV[i], id, main, x}
  end
  return out
end

-- ---------------------------------------------------------------------------- apply
-- Each profile entry: {id, groups = {{offset, {op...}}...}, fields = {...}, prune = {...},
-- pt?, must_exist?}. Only `fields` (every field the ops read or write) are loaded; `prune`
-- lists fields no accepted event can read any more (the engine decides, on event time).
if cmd == 'apply' then
  local pl = cjson.decode(ARGV[3])
  local meta = pl.meta
  local part = pl.partition
  local fired, applied, replayed, cooled, dups = {}, 0, 0, 0, 0
  for _, entry in ipairs(pl.profiles) do
    local id = resolve(entry.id)
    local pt = entry.pt or part
    -- group[3]: the guard of the event's stamped OneID ("<partition>" when it is this profile,
    -- "<partition>:<oneid>" for an alias). Merged mid-batch (id ~= entry.id): our own guards
    -- now live under our name in the survivor.
    local function guard_field(g)
      if id ~= entry.id and not string.find(g, ':', 1, true) then g = g .. ':' .. entry.id end
      return 'o:' .. g
    end
    local fields = entry.fields or {}
    local gfields = {}
    for _, group in ipairs(entry.groups) do
      local gf = guard_field(group[3] or tostring(part))
      group[4] = gf
      if not gfields[gf] then gfields[gf] = true; fields[#fields + 1] = gf end
    end
    local o = load_fields(mkey(id), fields)
    local xk = xkey(id)
    local xtouched = false
    local pushed = {}
    local stored_of, max_of = {}, {}
    for gf, _ in pairs(gfields) do
      stored_of[gf] = tonumber(o.h[gf] or '-1')
      max_of[gf] = stored_of[gf]
    end
    local skip_all = entry.must_exist and redis.call('EXISTS', mkey(id)) == 0
    for _, group in ipairs(entry.groups) do
      local offset = group[1]
      local gf = group[4]
      local stored = stored_of[gf]
      if offset >= 0 and offset <= stored then
        replayed = replayed + 1
      elseif skip_all then
        -- the profile was deleted meanwhile: only forget its timers
        for _, op in ipairs(group[2]) do
          if op[1] == 'V' then redis.call('ZREM', dkey(pt), 'v|' .. id .. '|' .. op[2])
          elseif op[1] == 'D' or op[1] == 'Dx' then redis.call('ZREM', dkey(pt), 'd|' .. id .. '|' .. op[2])
          elseif op[1] == 'I' then redis.call('ZREM', dkey(pt), 'i|' .. id) end
        end
      else
        if offset >= 0 then
          applied = applied + 1
          if offset > max_of[gf] then max_of[gf] = offset end
        end
        for _, op in ipairs(group[2]) do
          local k = op[1]
          if k == 'S' then
            local ts = op[2]
            if not o.h.fs or ts < tonumber(o.h.fs) then hset(o, 'fs', fmt(ts)) end
            if not o.h.ls or ts > tonumber(o.h.ls) then hset(o, 'ls', fmt(ts)) end
            if op[3] == 1 and (not o.h.li or ts > tonumber(o.h.li)) then hset(o, 'li', fmt(ts)) end
          elseif k == 'T' then
            local f = 't:' .. op[2]
            local cur = o.h[f]
            if cur == nil or op[3] >= msof(cur) then hset(o, f, op[4]) end
          elseif k == 'A' then
            -- op: A field kind value (field: a:<aggregate id>:<bucket>)
            hset(o, op[2], combine(op[3], o.h[op[2]], op[4]))
          elseif k == 'G' then
            local f = 'g:' .. op[2]
            local cur = o.h[f]
            if cur ~= '0' and (cur == nil or op[3] == 0 or op[3] > tonumber(cur)) then hset(o, f, fmt(op[3])) end
          elseif k == 'P' then
            hset(o, 's', add_points(o.h['s'], op[2], op[3], op[4]))
          elseif k == 'M' then
            if not o.h[op[2]] or op[3] > tonumber(o.h[op[2]]) then hset(o, op[2], fmt(op[3])) end
          elseif k == 'R' then
            if op[3] == nil or (o.h['tr'] or '') == op[3] then
              if op[2] == '' then hdel(o, 'tr') else hset(o, 'tr', op[2]) end
            end
          elseif k == 'V' then
            local f = 'v:' .. op[2]
            if op[5] == nil or (redis.call('HGET', xk, f) or '') == op[5] then
              local member = 'v|' .. id .. '|' .. op[2]
              if op[3] == '' then redis.call('HDEL', xk, f) else redis.call('HSET', xk, f, op[3]) end
              if op[3] ~= '' and op[4] >= 0 then zadd(pt, op[4], member)
              else redis.call('ZREM', dkey(pt), member) end
              xtouched = true
            end
          elseif k == 'D' then
            redis.call('HSET', xk, 'd:' .. op[2], op[3])
            zadd(pt, op[4], 'd|' .. id .. '|' .. op[2])
            xtouched = true
          elseif k == 'Dx' then
            redis.call('HDEL', xk, 'd:' .. op[2])
            redis.call('ZREM', dkey(pt), 'd|' .. id .. '|' .. op[2])
            xtouched = true
          elseif k == 'I' then
            local member = 'i|' .. id
            local ok = true
            if op[3] ~= nil then
              local sc = redis.call('ZSCORE', dkey(pt), member)
              ok = sc ~= false and tonumber(sc) == op[3]
            end
            if ok then
              if op[2] < 0 then redis.call('ZREM', dkey(pt), member) else zadd(pt, op[2], member) end
            end
          elseif k == 'F' then
            -- op: F key16 rule cooldown_until event_time key_expiry entry index
            local cf = 'c:' .. op[3]
            local cur = o.h[cf]
            if cur and op[5] < tonumber(cur) then
              cooled = cooled + 1
            elseif o.h['k:' .. op[2]] then
              dups = dups + 1  -- the idempotency key is set: never twice (SET NX semantics)
            else
              hset(o, 'k:' .. op[2], fmt(op[6]))
              if op[4] > 0 then hset(o, cf, fmt(op[4])) end
              pushed[#pushed + 1] = op[7]
              fired[#fired + 1] = op[8]
            end
          end
        end
      end
    end
    if not skip_all then
      for gf, maxoff in pairs(max_of) do
        if maxoff > stored_of[gf] then hset(o, gf, fmt(maxoff)) end
      end
      if entry.pt == nil and next(o.set) ~= nil and o.h.pt ~= fmt(part) then hset(o, 'pt', fmt(part)) end
      for _, f in ipairs(entry.prune or {}) do
        if not o.set[f] then hdel(o, f) end
      end
      if xtouched then
        if redis.call('EXISTS', xk) == 1 then hset(o, 'x', '1') else hdel(o, 'x') end
      end
      flush(o)
      push_history(id, pushed, meta.history)
    end
  end
  return {fired, applied, replayed, cooled, dups}
end

-- ---------------------------------------------------------------------------- due
if cmd == 'due' then
  local w, limit = ARGV[3], tonumber(ARGV[4])
  local parts = {}
  for i = 5, #ARGV do parts[#parts + 1] = ARGV[i] end
  if #parts == 0 then parts = redis.call('SMEMBERS', DSET) end
  local items, profiles, seen = {}, {}, {}
  for _, p in ipairs(parts) do
    local found = redis.call('ZRANGEBYSCORE', dkey(p), '-inf', w, 'WITHSCORES', 'LIMIT', 0, limit)
    for i = 1, #found, 2 do
      items[#items + 1] = {p, found[i], found[i + 1]}
      local _, id = parse_member(found[i])
      if id and not seen[id] then
        seen[id] = true
        profiles[#profiles + 1] = {id, redis.call('HGETALL', mkey(id)), redis.call('HGETALL', xkey(id))}
      end
    end
  end
  return {items, profiles}
end

-- ---------------------------------------------------------------------------- merge
if cmd == 'merge' then
  local sid, mid = resolve(ARGV[3]), resolve(ARGV[4])
  local meta = cjson.decode(ARGV[5])
  if sid == mid then return {sid, mid, 0} end
  local s, m = load(mkey(sid)), load(mkey(mid))
  local rank = {}
  for i, name in ipairs(meta.levels) do rank[name] = #meta.levels - i + 1 end
  local moved = 0
  local spt = s.h.pt or m.h.pt
  local mpt = m.h.pt
  for f, v in pairs(m.h) do
    local cur = s.h[f]
    local c = f:sub(1, 2)
    local new = nil
    if f == 'fs' then
      if not cur or tonumber(v) < tonumber(cur) then new = v end
    elseif c == 'o:' then
      -- Offset guards are per (stamped OneID, partition): the merged profile's own guards keep
      -- guarding its events under its name, never folded into the survivor's (that would skip
      -- the survivor's events interleaved below them in the same partition).
      local target = f
      if not string.find(f, ':', 3, true) then target = f .. ':' .. mid end
      local tcur = s.h[target]
      if not tcur or tonumber(v) > tonumber(tcur) then hset(s, target, v); moved = moved + 1 end
    elseif f == 'ls' or f == 'li' or c == 'c:' or c == 'k:' then
      if not cur or tonumber(v) > tonumber(cur) then new = v end
    elseif f == 'pt' or c == 'r:' then
      if not cur then new = v end
    elseif c == 't:' then
      if not cur or msof(v) > msof(cur) then new = v end
    elseif c == 'a:' then
      local name = string.match(f, '^a:(.+):%-?%d+$')
      local am = name and meta.aggs[name]
      if am then new = combine(am[1], cur, v) elseif not cur then new = v end
    elseif c == 'g:' then
      if cur ~= '0' and (not cur or v == '0' or tonumber(v) > tonumber(cur)) then new = v end
    elseif f == 's' then
      if not cur then new = v else
        local a, ar = parse_score(cur)
        local b, br = parse_score(v)
        local ref = math.max(ar, br)
        new = string.format('%.10g', a * decay(ref - ar, meta.hl) + b * decay(ref - br, meta.hl)) .. '|' .. fmt(ref)
      end
    elseif f == 'tr' then
      if not cur or (rank[v] or 0) > (rank[cur] or 0) then new = v end
    elseif not cur then
      new = v
    end
    if new ~= nil and new ~= cur then hset(s, f, new); moved = moved + 1 end
  end
  -- timers and open views follow the person: re-key members from the merged id
  local mx, sx = load(xkey(mid)), load(xkey(sid))
  for f, v in pairs(mx.h) do
    local kind, ref = f:sub(1, 1), f:sub(3)
    if mpt then
      local old = kind .. '|' .. mid .. '|' .. ref
      local score = redis.call('ZSCORE', dkey(mpt), old)
      redis.call('ZREM', dkey(mpt), old)
      if score and sx.h[f] == nil and spt then zadd(spt, score, kind .. '|' .. sid .. '|' .. ref) end
    end
    if sx.h[f] == nil then hset(sx, f, v); moved = moved + 1 end
  end
  if mpt then
    local score = redis.call('ZSCORE', dkey(mpt), 'i|' .. mid)
    redis.call('ZREM', dkey(mpt), 'i|' .. mid)
    if score and spt then
      local mine = redis.call('ZSCORE', dkey(spt), 'i|' .. sid)
      if not mine or tonumber(score) > tonumber(mine) then zadd(spt, score, 'i|' .. sid) end
    end
  end
  if spt then hset(s, 'pt', spt) end
  if next(sx.h) ~= nil then hset(s, 'x', '1') end
  -- fired triggers: both histories, newest first, bounded
  local entries = {}
  for _, k in ipairs({hkey(sid), hkey(mid)}) do
    local text = redis.call('GET', k)
    if text then
      for line in string.gmatch(text, '[^\n]+') do entries[#entries + 1] = line end
    end
  end
  if #entries > 0 then
    local decoded = {}
    for i, e in ipairs(entries) do
      local d = cjson.decode(e)
      decoded[i] = {tonumber(d[4]) or 0, tonumber(d[3]) or 0, e}
    end
    table.sort(decoded, function(a, b)
      if a[1] ~= b[1] then return a[1] > b[1] end
      if a[2] ~= b[2] then return a[2] > b[2] end
      return a[3] < b[3]
    end)
    local keep = {}
    for i = 1, math.min(#decoded, meta.history) do keep[i] = decoded[i][3] end
    redis.call('SET', hkey(sid), table.concat(keep, '\n'))
  end
  -- later events stamped with the merged id land on the survivor
  for f in pairs(s.h) do
    if f:sub(1, 2) == 'r:' then
      if redis.call('EXISTS', rkey(f:sub(3))) == 1 then
        redis.call('SET', rkey(f:sub(3)), sid, 'KEEPTTL')
      else
        hdel(s, f)
      end
    end
  end
  hset(s, 'r:' .. mid, '1')
  flush(s)
  flush(sx)
  redis.call('DEL', mkey(mid), xkey(mid), hkey(mid))
  redis.call('SET', rkey(mid), sid, 'PX', meta.redirect_ttl)
  return {sid, mid, moved}
end

-- ---------------------------------------------------------------------------- delete
if cmd == 'delete' then
  local chain = {ARGV[3]}
  local id = ARGV[3]
  for _ = 1, 8 do
    local nxt = redis.call('GET', rkey(id))
    if not nxt then break end
    id = nxt
    chain[#chain + 1] = id
  end
  local o, x = load(mkey(id)), load(xkey(id))
  local parts = {}
  if o.h.pt then parts[o.h.pt] = true end
  for f in pairs(o.h) do
    if f:sub(1, 2) == 'o:' then parts[f:sub(3)] = true end
  end
  for p in pairs(parts) do
    redis.call('ZREM', dkey(p), 'i|' .. id)
    for f in pairs(x.h) do
      redis.call('ZREM', dkey(p), f:sub(1, 1) .. '|' .. id .. '|' .. f:sub(3))
    end
  end
  local keys = {mkey(id), xkey(id), hkey(id)}
  for _, c in ipairs(chain) do keys[#keys + 1] = rkey(c) end
  for f in pairs(o.h) do
    if f:sub(1, 2) == 'r:' then keys[#keys + 1] = rkey(f:sub(3)) end
  end
  local deleted = 0
  for _, n in ipairs(call_chunked('DEL', nil, keys)) do deleted = deleted + n end
  return deleted
end

return redis.error_reply('unknown command ' .. tostring(cmd))
