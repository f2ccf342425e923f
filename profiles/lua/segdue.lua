-- ---------------------------------------------------------------------------- segdue
-- ARGV: now lease limit segments...  Members whose re-check is due (at most `limit` per segment)
-- are claimed for `lease` ms (another worker's sweep skips them meanwhile) and returned with
-- their profile hash, for the caller to evaluate and `apply`. A member whose profile is gone
-- leaves the segment here (reason deleted).  -> {{{id, main}...}, {record lines}}
if cmd == 'segdue' then
  local now, lease, limit = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
  local profiles, seen, lines = {}, {}, {}
  for i = 6, #ARGV do
    local name = ARGV[i]
    local key = segkey(name)
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', now, 'LIMIT', 0, limit)) do
      if redis.call('EXISTS', mkey(id)) == 0 then
        redis.call('ZREM', key, id)
        lines[#lines + 1] = seg_change(SEGMENT_EXITED, name, id, REASON_DELETED, now, now, '', '', '{}', WRITER_LOOP)
      else
        redis.call('ZADD', key, now + lease, id)
        if not seen[id] then
          seen[id] = true
          profiles[#profiles + 1] = {id, redis.call('HGETALL', mkey(id))}
        end
      end
    end
  end
  return {profiles, lines}
end
