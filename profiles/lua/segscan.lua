-- ---------------------------------------------------------------------------- segscan
-- ARGV: fingerprint now count  Every profile gets its segment timer due now (a later one is
-- moved to now), so the sweep of its partition evaluates it once under the stream segments
-- the fingerprint names (their names and conditions, profiles/rules/model.py): a segment added
-- or changed fills for the people who send nothing more, and rules that gained a timed segment
-- give everyone a lasting timer (profiles/segments/timing.py); an evaluation that needs none
-- drops it. One SCAN step of `count` keys per run; the cursor lives in SEG_SCAN with the
-- fingerprint it serves (another fingerprint starts over; a finished scan is "done"). Each step
-- is atomic: a crash never leaves a scanned profile without its timer; a step run again only
-- moves timers to now again (the evaluation records a change only once: lib_segments.lua).
--   -> {timers set, 1 when the scan is done}
if cmd == 'segscan' then
  local fp, now, count = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
  local scan = P .. SEGMENT_SCAN_KEY
  local state = redis.call('HMGET', scan, 'f', 'c')
  local cursor = '0'
  if state[1] == fp then cursor = state[2] or '0' end
  if cursor == 'done' then return {0, 1} end
  local head = P .. PROFILE_KEY .. '{'
  local found = redis.call('SCAN', cursor, 'MATCH', glob(head) .. '*}', 'COUNT', count)
  local added = 0
  for _, key in ipairs(found[2]) do
    local id = string.sub(key, #head + 1, -2)
    local pt = redis.call('HGET', key, PARTITION)
    local member = TIMER_SEGMENTS .. '|' .. id
    if pt and not erased(id) then
      local at = redis.call('ZSCORE', dkey(pt), member)
      if not at or tonumber(at) > now then
        zadd(pt, now, member)
        added = added + 1
      end
    end
  end
  local nxt = found[1] == '0' and 'done' or found[1]
  redis.call('HSET', scan, 'f', fp, 'c', nxt)
  return {added, nxt == 'done' and 1 or 0}
end
