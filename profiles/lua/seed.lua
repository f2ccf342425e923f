-- ---------------------------------------------------------------------------- seed
-- A rule added after its events arrived, seeded from the lake's history (`touchstream
-- backfill`, analytics/history/backfill.py). ARGV[3]: {id, guards = {o:<guard> = offset...}?,
-- prefix = "a:<aggregate id>:" or absent, set = {field = value...}, tags = {tag = expiry...}}.
-- Buckets are *replaced* (the aggregate's fields become exactly `set`): history computed them
-- from the events this profile had applied when its guards were read, so the profile's offset
-- guards must still be exactly those (else 'changed': the stream applied more meanwhile; read
-- again), and events after them are the stream's to count. Tags only ever extend (as OP_TAG),
-- so they need no guards.
-- -> 'missing' (no such profile, or merged away: never created here), 'changed', 'same', 'seeded'
if cmd == 'seed' then
  local pl = cjson.decode(ARGV[3])
  if redis.call('EXISTS', mkey(pl.id)) == 0 then return 'missing' end
  local o = load(mkey(pl.id))
  if pl.guards then
    local guards = 0
    for f, v in pairs(o.h) do
      if f:sub(1, 2) == OFFSET then
        guards = guards + 1
        if pl.guards[f] == nil or tonumber(pl.guards[f]) ~= tonumber(v) then return 'changed' end
      end
    end
    for _ in pairs(pl.guards) do guards = guards - 1 end
    if guards ~= 0 then return 'changed' end
  end
  if pl.prefix then
    for f in pairs(o.h) do
      if f:sub(1, #pl.prefix) == pl.prefix and pl.set[f] == nil then hdel(o, f) end
    end
    for f, v in pairs(pl.set) do
      if o.h[f] ~= v then hset(o, f, v) end
    end
  end
  for tag, expiry in pairs(pl.tags or {}) do
    local f = TAG .. tag
    local cur = o.h[f]
    if cur ~= '0' and (cur == nil or expiry == 0 or expiry > tonumber(cur)) then hset(o, f, fmt(expiry)) end
  end
  if next(o.set) == nil and next(o.del) == nil then return 'same' end
  flush(o)
  return 'seeded'
end
