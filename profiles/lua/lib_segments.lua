-- Segments (profiles/segments/): membership changes, each with the segment's next version and a
-- record line in the segments outbox, written in the same run as what caused it.
local SEGS = P .. SEGMENTS_KEY
local SEG_OUTBOX = P .. SEGMENT_OUTBOX_KEY
local function segkey(name) return P .. SEGMENT_MEMBERS_KEY .. name end

-- one change: the segment's next version, the record line (slots SEGMENT_LINE_*) in the outbox
local function seg_change(change, name, id, reason, as_of, now, message_id, survivor, facts, writer)
  local version = redis.call('HINCRBY', SEGS, name, 1)
  local line = cjson.encode({change, name, id, version, reason, as_of, now, message_id, survivor, facts, writer})
  redis.call('HSET', SEG_OUTBOX, name .. ':' .. id .. ':' .. version, line)
  return line
end

-- the OneID leaves every segment it is in (either kind): merged into another, or deleted
local function seg_exit_all(id, reason, now, survivor, writer)
  local lines = {}
  for _, name in ipairs(redis.call('HKEYS', SEGS)) do
    if redis.call('ZREM', segkey(name), id) == 1 then
      lines[#lines + 1] = seg_change(SEGMENT_EXITED, name, id, reason, now, now, '', survivor, '{}', writer)
    end
  end
  return lines
end

-- The profile's segment timer "s|id" (profiles/segments/timing.py) after an evaluation: `due`
-- (ms; -1 or a profile gone: none), only ever earlier with `lt` (after events). It lives in the
-- profile's partition (`pt` field); `from`: the partition whose timer ran, left if they differ.
local function seg_timer(id, h, seg, from, exists)
  if seg.due == nil then return end
  local member = TIMER_SEGMENTS .. '|' .. id
  local to = h[PARTITION] or from
  if from and from ~= to then redis.call('ZREM', dkey(from), member) end
  if not to then return end
  if seg.due < 0 or not exists then
    redis.call('ZREM', dkey(to), member)
  elseif seg.lt then
    redis.call('ZADD', dkey(to), 'LT', seg.due, member)
    redis.call('SADD', DSET, to)
  else
    zadd(to, seg.due, member)
  end
end

-- An evaluation's ops for one profile (membership.py: {mg, ops = {{name, was, want, next_check,
-- reason, as_of, message_id, facts}...}, due?, lt?}), checked against what Redis holds now: a
-- profile merged away (id ~= asked), a merge folded into it, or a membership changed since the
-- read is a conflict (the caller evaluates again on a fresh read) and nothing is written.
-- `h`: the profile's loaded fields (they include mg, pt and the ops' m:<name>); `from`: the
-- partition whose timer ran (a sweep), else nil.
local function seg_apply(id, asked, h, seg, now, lines, conflicts, from)
  if id ~= asked or (h[MERGE_GEN] or '') ~= seg.mg then conflicts[#conflicts + 1] = id; return end
  for _, op in ipairs(seg.ops) do
    if (h[SEGMENT .. op[1]] ~= nil) ~= (op[2] == 1) then conflicts[#conflicts + 1] = id; return end
  end
  local exists = redis.call('EXISTS', mkey(id)) == 1
  for _, op in ipairs(seg.ops) do
    local name, was, want = op[1], op[2], op[3]
    if want == 1 and was == 0 then
      if exists then
        redis.call('HSET', mkey(id), SEGMENT .. name, fmt(now))
        redis.call('ZADD', segkey(name), op[4], id)
        lines[#lines + 1] = seg_change(SEGMENT_ENTERED, name, id, op[5], op[6], now, op[7], '', op[8], WRITER_LOOP)
      end
    elseif want == 0 and was == 1 then
      redis.call('HDEL', mkey(id), SEGMENT .. name)
      redis.call('ZREM', segkey(name), id)
      lines[#lines + 1] = seg_change(SEGMENT_EXITED, name, id, op[5], op[6], now, op[7], '', op[8], WRITER_LOOP)
    elseif want == 1 then
      redis.call('ZADD', segkey(name), op[4], id)  -- still a member: its next re-check
    end
  end
  seg_timer(id, h, seg, from, exists)
end
