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
  if o.h[PARTITION] then parts[o.h[PARTITION]] = true end
  for f in pairs(o.h) do
    if f:sub(1, 2) == OFFSET then parts[f:sub(3)] = true end
  end
  for p in pairs(parts) do
    redis.call('ZREM', dkey(p), TIMER_INACTIVITY .. '|' .. id)
    redis.call('ZREM', dkey(p), TIMER_SEGMENTS .. '|' .. id)
    for f in pairs(x.h) do
      redis.call('ZREM', dkey(p), f:sub(1, 1) .. '|' .. id .. '|' .. f:sub(3))
    end
  end
  local t = redis.call('TIME')  -- segments the person leaves; the next sweep sends the records
  seg_exit_all(id, REASON_DELETED, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), '', WRITER_ORPHAN)
  local keys = {mkey(id), xkey(id), hkey(id)}
  for _, c in ipairs(chain) do keys[#keys + 1] = rkey(c) end
  for f in pairs(o.h) do
    if f:sub(1, 2) == MERGED then keys[#keys + 1] = rkey(f:sub(3)) end
  end
  local deleted = 0
  for _, n in ipairs(call_chunked('DEL', nil, keys)) do deleted = deleted + n end
  return deleted
end
