-- ---------------------------------------------------------------------------- segset
-- ARGV: segment now reason changes(JSON: {{oneid, want 0/1}...})  The members of an SQL segment
-- (an index only: no profile field), each change made only if membership still differs, so a
-- refresh cut short by a crash is finished by the next one, never repeated.  -> {record lines}
if cmd == 'segset' then
  local name, now, reason = ARGV[3], tonumber(ARGV[4]), ARGV[5]
  local key = segkey(name)
  local lines = {}
  for _, change in ipairs(cjson.decode(ARGV[6])) do
    local id, want = change[1], change[2]
    local is = redis.call('ZSCORE', key, id) ~= false
    if want == 1 and not is and not erased(id) then  -- an erased person never enters again
      redis.call('ZADD', key, now, id)
      lines[#lines + 1] = seg_change(SEGMENT_ENTERED, name, id, reason, now, now, '', '', '{}', WRITER_REFRESH)
    elseif want == 0 and is then
      redis.call('ZREM', key, id)
      lines[#lines + 1] = seg_change(SEGMENT_EXITED, name, id, reason, now, now, '', '', '{}', WRITER_REFRESH)
    end
  end
  return lines
end
