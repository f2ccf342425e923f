-- ---------------------------------------------------------------------------- apply
-- Each profile entry: {id, groups = {{offset, {op...}}...}, fields = {...}, prune = {...},
-- pt?, must_exist?, seg?}. Only `fields` (every field the ops read or write) are loaded; `prune`
-- lists fields no accepted event can read any more (the engine decides, on event time); `seg`:
-- its stream segments as evaluated after these changes (lib_segments.lua, seg_apply).
if cmd == 'apply' then
  local pl = cjson.decode(ARGV[3])
  local meta = pl.meta
  local part = pl.partition
  local fired, applied, replayed, cooled, dups, refused = {}, 0, 0, 0, 0, {}
  local seg_lines, seg_conflicts = {}, {}
  for _, entry in ipairs(pl.profiles) do
    local id = resolve(entry.id)
    -- an erased person (events already stamped with the OneID): nothing is written, the stage
    -- reports the refusal
    local tombstoned = erased(entry.id) or (id ~= entry.id and erased(id))
    if tombstoned then refused[#refused + 1] = entry.id end
    local pt = entry.pt or part
    -- group[3]: the guard of the event's stamped OneID ("<partition>" when it is this profile,
    -- "<partition>:<oneid>" for an alias). Merged mid-batch (id ~= entry.id): our own guards
    -- now live under our name in the survivor.
    local function guard_field(g)
      if id ~= entry.id and not string.find(g, ':', 1, true) then g = g .. ':' .. entry.id end
      return OFFSET .. g
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
    local skip_all = tombstoned or (entry.must_exist and redis.call('EXISTS', mkey(id)) == 0)
    for _, group in ipairs(entry.groups) do
      local offset = group[1]
      local gf = group[4]
      local stored = stored_of[gf]
      if offset >= 0 and offset <= stored then
        replayed = replayed + 1
      elseif skip_all then
        -- the profile was deleted (or erased) meanwhile: only forget its timers
        for _, op in ipairs(group[2]) do
          if op[1] == OP_VIEW then redis.call('ZREM', dkey(pt), TIMER_VIEW .. '|' .. id .. '|' .. op[2])
          elseif op[1] == OP_SCHEDULE or op[1] == OP_UNSCHEDULE then
            redis.call('ZREM', dkey(pt), TIMER_DELAYED .. '|' .. id .. '|' .. op[2])
          elseif op[1] == OP_INACTIVITY then redis.call('ZREM', dkey(pt), TIMER_INACTIVITY .. '|' .. id) end
        end
      else
        if offset >= 0 then
          applied = applied + 1
          if offset > max_of[gf] then max_of[gf] = offset end
        end
        for _, op in ipairs(group[2]) do
          local k = op[1]
          if k == OP_SEEN then
            local ts = op[2]
            local fs, ls, li = o.h[FIRST_SEEN], o.h[LAST_SEEN], o.h[LAST_INTERACTION]
            if not fs or ts < tonumber(fs) then hset(o, FIRST_SEEN, fmt(ts)) end
            if not ls or ts > tonumber(ls) then hset(o, LAST_SEEN, fmt(ts)) end
            if op[3] == 1 and (not li or ts > tonumber(li)) then hset(o, LAST_INTERACTION, fmt(ts)) end
          elseif k == OP_TRAIT then
            local f = TRAIT .. op[2]
            local cur = o.h[f]
            if cur == nil or op[3] >= msof(cur) then hset(o, f, op[4]) end
          elseif k == OP_BUCKET then
            -- op: A field kind value (field: a:<aggregate id>:<bucket>)
            hset(o, op[2], combine(op[3], o.h[op[2]], op[4]))
          elseif k == OP_TAG then
            local f = TAG .. op[2]
            local cur = o.h[f]
            if cur ~= '0' and (cur == nil or op[3] == 0 or op[3] > tonumber(cur)) then hset(o, f, fmt(op[3])) end
          elseif k == OP_POINTS then
            hset(o, SCORE, add_points(o.h[SCORE], op[2], op[3], op[4]))
          elseif k == OP_MAX then
            if not o.h[op[2]] or op[3] > tonumber(o.h[op[2]]) then hset(o, op[2], fmt(op[3])) end
          elseif k == OP_TIER then
            if op[3] == nil or (o.h[TIER] or '') == op[3] then
              if op[2] == '' then hdel(o, TIER) else hset(o, TIER, op[2]) end
            end
          elseif k == OP_VIEW then
            local f = VIEW .. op[2]
            if op[5] == nil or (redis.call('HGET', xk, f) or '') == op[5] then
              local member = TIMER_VIEW .. '|' .. id .. '|' .. op[2]
              if op[3] == '' then redis.call('HDEL', xk, f) else redis.call('HSET', xk, f, op[3]) end
              if op[3] ~= '' and op[4] >= 0 then zadd(pt, op[4], member)
              else redis.call('ZREM', dkey(pt), member) end
              xtouched = true
            end
          elseif k == OP_SCHEDULE then
            redis.call('HSET', xk, DELAYED .. op[2], op[3])
            zadd(pt, op[4], TIMER_DELAYED .. '|' .. id .. '|' .. op[2])
            xtouched = true
          elseif k == OP_UNSCHEDULE then
            redis.call('HDEL', xk, DELAYED .. op[2])
            redis.call('ZREM', dkey(pt), TIMER_DELAYED .. '|' .. id .. '|' .. op[2])
            xtouched = true
          elseif k == OP_INACTIVITY then
            local member = TIMER_INACTIVITY .. '|' .. id
            local ok = true
            if op[3] ~= nil then
              local sc = redis.call('ZSCORE', dkey(pt), member)
              ok = sc ~= false and tonumber(sc) == op[3]
            end
            if ok then
              if op[2] < 0 then redis.call('ZREM', dkey(pt), member) else zadd(pt, op[2], member) end
            end
          elseif k == OP_FIRE then
            -- op: F key16 rule cooldown_until event_time key_expiry entry index
            local cf = COOLDOWN .. op[3]
            local cur = o.h[cf]
            if cur and op[5] < tonumber(cur) then
              cooled = cooled + 1
            elseif o.h[FIRED_KEY .. op[2]] then
              dups = dups + 1  -- the idempotency key is set: never twice (SET NX semantics)
            else
              hset(o, FIRED_KEY .. op[2], fmt(op[6]))
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
      if entry.pt == nil and next(o.set) ~= nil and o.h[PARTITION] ~= fmt(part) then
        hset(o, PARTITION, fmt(part))
      end
      for _, f in ipairs(entry.prune or {}) do
        if not o.set[f] then hdel(o, f) end
      end
      if xtouched then
        if redis.call('EXISTS', xk) == 1 then hset(o, HAS_TRANSIENT, '1') else hdel(o, HAS_TRANSIENT) end
      end
      flush(o)
      push_history(id, pushed, meta.history)
    end
    if entry.seg and not tombstoned then
      seg_apply(id, entry.id, o.h, entry.seg, pl.now, seg_lines, seg_conflicts, entry.pt and fmt(entry.pt))
    end
  end
  return {fired, applied, replayed, cooled, dups, seg_lines, seg_conflicts, refused}
end
