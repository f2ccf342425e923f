return redis.error_reply('unknown command ' .. tostring(cmd))
