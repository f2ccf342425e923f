-- ---------------------------------------------------------------------------- merge
if cmd == 'merge' then
  local sid, mid = resolve(ARGV[3]), resolve(ARGV[4])
  local meta = cjson.decode(ARGV[5])
  -- a merge record still in flight when the person was erased re-creates nothing
  if erased(ARGV[3]) or erased(ARGV[4]) or erased(sid) or erased(mid) then return {sid, mid, -1} end
  if sid == mid then return {sid, mid, 0} end
  local s, m = load(mkey(sid)), load(mkey(mid))
  local rank = {}
  for i, name in ipairs(meta.levels) do rank[name] = #meta.levels - i + 1 end
  local moved = 0
  local spt = s.h[PARTITION] or m.h[PARTITION]
  local mpt = m.h[PARTITION]
  for f, v in pairs(m.h) do
    local cur = s.h[f]
    local c = f:sub(1, 2)
    local new = nil
    if f == FIRST_SEEN then
      if not cur or tonumber(v) < tonumber(cur) then new = v end
    elseif c == OFFSET then
      -- Offset guards are per (stamped OneID, partition): the merged profile's own guards keep
      -- guarding its events under its name, never folded into the survivor's (that would skip
      -- the survivor's events interleaved below them in the same partition).
      local target = f
      if not string.find(f, ':', 3, true) then target = f .. ':' .. mid end
      local tcur = s.h[target]
      if not tcur or tonumber(v) > tonumber(tcur) then hset(s, target, v); moved = moved + 1 end
    elseif f == LAST_SEEN or f == LAST_INTERACTION or c == COOLDOWN or c == FIRED_KEY then
      if not cur or tonumber(v) > tonumber(cur) then new = v end
    elseif c == SEGMENT or f == MERGE_GEN then
      -- memberships are the merged OneID's own: it leaves them below, the survivor is re-evaluated
    elseif f == PARTITION or c == MERGED then
      if not cur then new = v end
    elseif c == TRAIT then
      if not cur or msof(v) > msof(cur) then new = v end
    elseif c == BUCKET then
      local name = string.match(f, '^a:(.+):%-?%d+$')
      local am = name and meta.aggs[name]
      if am then new = combine(am[1], cur, v) elseif not cur then new = v end
    elseif c == TAG then
      if cur ~= '0' and (not cur or v == '0' or tonumber(v) > tonumber(cur)) then new = v end
    elseif f == SCORE then
      if not cur then new = v else
        local a, ar = parse_score(cur)
        local b, br = parse_score(v)
        local ref = math.max(ar, br)
        new = string.format('%.10g', a * decay(ref - ar, meta.hl) + b * decay(ref - br, meta.hl)) .. '|' .. fmt(ref)
      end
    elseif f == TIER then
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
    local score = redis.call('ZSCORE', dkey(mpt), TIMER_INACTIVITY .. '|' .. mid)
    redis.call('ZREM', dkey(mpt), TIMER_INACTIVITY .. '|' .. mid)
    if score and spt then
      local mine = redis.call('ZSCORE', dkey(spt), TIMER_INACTIVITY .. '|' .. sid)
      if not mine or tonumber(score) > tonumber(mine) then zadd(spt, score, TIMER_INACTIVITY .. '|' .. sid) end
    end
    -- the segment timer: the earlier of the two (the survivor is evaluated after the merge anyway)
    score = redis.call('ZSCORE', dkey(mpt), TIMER_SEGMENTS .. '|' .. mid)
    redis.call('ZREM', dkey(mpt), TIMER_SEGMENTS .. '|' .. mid)
    if score and spt then
      local mine = redis.call('ZSCORE', dkey(spt), TIMER_SEGMENTS .. '|' .. sid)
      if not mine or tonumber(score) < tonumber(mine) then zadd(spt, score, TIMER_SEGMENTS .. '|' .. sid) end
    end
  end
  if spt then hset(s, PARTITION, spt) end
  if next(sx.h) ~= nil then hset(s, HAS_TRANSIENT, '1') end
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
      decoded[i] = {tonumber(d[HISTORY_FIRED_AT]) or 0, tonumber(d[HISTORY_EVENT_TIME]) or 0, e}
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
    if f:sub(1, 2) == MERGED then
      if redis.call('EXISTS', rkey(f:sub(3))) == 1 then
        redis.call('SET', rkey(f:sub(3)), sid, 'KEEPTTL')
      else
        hdel(s, f)
      end
    end
  end
  hset(s, MERGED .. mid, '1')
  hset(s, MERGE_GEN, fmt((tonumber(s.h[MERGE_GEN]) or 0) + 1))  -- a segment evaluation read before is stale
  flush(s)
  flush(sx)
  redis.call('DEL', mkey(mid), xkey(mid), hkey(mid))
  redis.call('SET', rkey(mid), sid, 'PX', meta.redirect_ttl)
  local lines = seg_exit_all(mid, REASON_MERGED, meta.now or 0, sid, WRITER_LOOP)
  return {sid, mid, moved, lines}
end
