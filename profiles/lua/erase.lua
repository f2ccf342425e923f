-- ---------------------------------------------------------------------------- erase
-- Everything of the given OneIDs (a survivor and its aliases; the OneIDs it redirects to or that
-- were merged into it are followed too): main, transient, history and redirect keys, their timers
-- in every partition's due set, their trigger-outbox entries, their segment memberships (pending
-- segment records naming them are dropped; each membership ends with an exit record, reason
-- deleted, which the next sweep sends so audiences downstream drop the person too). Answers
-- {keys deleted, timers removed, outbox entries removed, idempotency keys of the fired triggers
-- (for the webhook sink's done keys), every OneID visited, segment memberships ended}.
-- Idempotent: a second run finds nothing.
if cmd == 'erase' then
  local todo, seen, visited = {}, {}, {}
  for i = 3, #ARGV do todo[#todo + 1] = ARGV[i] end
  local keys, timers, outbox, fired, memberships = 0, 0, 0, {}, 0
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local parts = redis.call('SMEMBERS', DSET)
  while #todo > 0 do
    local id = table.remove(todo)
    if not seen[id] then
      seen[id] = true
      visited[#visited + 1] = id
      local nxt = redis.call('GET', rkey(id))
      if nxt then todo[#todo + 1] = nxt end
      local o, x = load(mkey(id)), load(xkey(id))
      for f in pairs(o.h) do
        if f:sub(1, 2) == MERGED then todo[#todo + 1] = f:sub(3) end
      end
      for _, p in ipairs(parts) do
        timers = timers + redis.call('ZREM', dkey(p), TIMER_INACTIVITY .. '|' .. id)
        timers = timers + redis.call('ZREM', dkey(p), TIMER_SEGMENTS .. '|' .. id)
        for f in pairs(x.h) do
          timers = timers + redis.call('ZREM', dkey(p), f:sub(1, 1) .. '|' .. id .. '|' .. f:sub(3))
        end
      end
      local history = redis.call('GET', hkey(id))
      if history then
        for line in string.gmatch(history, '[^\n]+') do
          local ok, d = pcall(cjson.decode, line)
          if ok and type(d) == 'table' and d[1] and d[2] then fired[#fired + 1] = d[1] .. ':' .. d[2] end
        end
      end
      local cursor = '0'
      repeat
        local res = redis.call('HSCAN', OUTBOX, cursor, 'MATCH', glob(id) .. OUTBOX_SEPARATOR .. '*', 'COUNT', 1000)
        cursor = res[1]
        for i = 1, #res[2], 2 do outbox = outbox + redis.call('HDEL', OUTBOX, res[2][i]) end
      until cursor == '0'
      cursor = '0'
      repeat
        local res = redis.call('HSCAN', SEG_OUTBOX, cursor, 'MATCH', '*:' .. glob(id) .. ':*', 'COUNT', 1000)
        cursor = res[1]
        for i = 1, #res[2], 2 do outbox = outbox + redis.call('HDEL', SEG_OUTBOX, res[2][i]) end
      until cursor == '0'
      memberships = memberships + #seg_exit_all(id, REASON_DELETED, now, '', WRITER_ORPHAN)
      keys = keys + redis.call('DEL', mkey(id), xkey(id), hkey(id), rkey(id))
    end
  end
  return {keys, timers, outbox, fired, visited, memberships}
end
