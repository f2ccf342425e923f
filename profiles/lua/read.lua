-- ---------------------------------------------------------------------------- read
if cmd == 'read' then
  local out = {}
  for i = 3, #ARGV do
    local id = resolve(ARGV[i])
    local main = redis.call('HGETALL', mkey(id))
    local x = {}
    for j = 1, #main, 2 do
      if main[j] == HAS_TRANSIENT then x = redis.call('HGETALL', xkey(id)); break end
    end
    out[#out + 1] = {ARGV[i], id, main, x, (erased(ARGV[i]) or erased(id)) and 1 or 0}
  end
  return out
end
