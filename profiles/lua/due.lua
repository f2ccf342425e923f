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
