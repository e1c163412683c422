// The Lua scripts cluster mode runs in Redis. Each is atomic (Redis runs one script at a time) and, with
// `appendfsync always`, on disk before its reply. Keys are built inside the scripts from the prefix, so they
// need a standalone Redis (or one Redis Cluster slot): see ARCHITECTURE.md, "Cluster".

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** Fails unless this node's lease is current: a node whose lease lapsed writes nothing (it is fenced). */
const FENCE = `local lease = redis.call('ZSCORE', P .. 'nodes', me)
if (not lease) or tonumber(lease) < now then return redis.error_reply('FENCED this node lost its lease') end`;

/**
 * One store batch: ARGV = prefix, node member ('' = no fencing, a plain store), batch number, then the ops.
 * A batch number at or below the last one applied is a retry of a batch that was applied (the reply was lost):
 * nothing is done again. A gap means batches were lost: an error.
 */
export const COMMIT = `local P = ARGV[1]
local me = ARGV[2]
local bseq = tonumber(ARGV[3])
${NOW}
if me ~= '' then
  ${FENCE}
  local last = tonumber(redis.call('HGET', P .. 'batch', me) or '0')
  if bseq <= last then return 0 end
  if bseq ~= last + 1 then return redis.error_reply('GAP batch ' .. bseq .. ' after ' .. last) end
  redis.call('HSET', P .. 'batch', me, bseq)
end
local logged = 1
local i = 4
local n = #ARGV
while i <= n do
  local op = ARGV[i]
  if op == 'ps' then
    redis.call('SET', P .. 's:' .. ARGV[i + 1], ARGV[i + 2])
    redis.call('SADD', P .. 'sess', ARGV[i + 1])
    i = i + 3
  elseif op == 'ds' then
    local c = ARGV[i + 1]
    redis.call('DEL', P .. 's:' .. c, P .. 'sub:' .. c, P .. 'q:' .. c, P .. 'qz:' .. c, P .. 'qb:' .. c, P .. 'qr:' .. c,
      P .. 'st:' .. c, P .. 'q2:' .. c, P .. 'seen:' .. c)
    redis.call('SREM', P .. 'sess', c)
    i = i + 2
  elseif op == 'sub' then
    redis.call('HSET', P .. 'sub:' .. ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  elseif op == 'uns' then
    redis.call('HDEL', P .. 'sub:' .. ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  elseif op == 'enq' then
    local c = ARGV[i + 1]
    local seq = ARGV[i + 2]
    -- Enqueued again with the same seq: the entry is replaced (with its byte count and state).
    local old = tonumber(redis.call('HGET', P .. 'qb:' .. c, seq) or '0')
    redis.call('HSET', P .. 'q:' .. c, seq, ARGV[i + 3])
    redis.call('ZADD', P .. 'qz:' .. c, seq, seq)
    redis.call('SREM', P .. 'qr:' .. c, seq)
    redis.call('HSET', P .. 'qb:' .. c, seq, ARGV[i + 4])
    redis.call('HINCRBY', P .. 'st:' .. c, 'bytes', tonumber(ARGV[i + 4]) - old)
    local last = tonumber(redis.call('HGET', P .. 'st:' .. c, 'last') or '0')
    if tonumber(seq) > last then redis.call('HSET', P .. 'st:' .. c, 'last', seq) end
    if ARGV[i + 5] ~= '' then
      redis.call('ZADD', P .. 'seen:' .. c, now, ARGV[i + 5])
      redis.call('ZREMRANGEBYSCORE', P .. 'seen:' .. c, '-inf', now - 600000)
    end
    i = i + 6
  elseif op == 'sent' then
    local c = ARGV[i + 1]
    local s = tonumber(ARGV[i + 2])
    local cur = tonumber(redis.call('HGET', P .. 'st:' .. c, 'sent') or '0')
    if s > cur then redis.call('HSET', P .. 'st:' .. c, 'sent', s) end
    i = i + 3
  elseif op == 'rel' then
    local c = ARGV[i + 1]
    local seq = ARGV[i + 2]
    -- The queue's byte total keeps counting it until it is dequeued; a page read counts it as 0 bytes.
    if redis.call('HEXISTS', P .. 'q:' .. c, seq) == 1 then redis.call('SADD', P .. 'qr:' .. c, seq) end
    i = i + 3
  elseif op == 'deq' then
    local c = ARGV[i + 1]
    local seq = ARGV[i + 2]
    if redis.call('HDEL', P .. 'q:' .. c, seq) == 1 then
      redis.call('ZREM', P .. 'qz:' .. c, seq)
      local b = tonumber(redis.call('HGET', P .. 'qb:' .. c, seq) or '0')
      redis.call('HDEL', P .. 'qb:' .. c, seq)
      redis.call('SREM', P .. 'qr:' .. c, seq)
      redis.call('HINCRBY', P .. 'st:' .. c, 'bytes', 0 - b)
    end
    i = i + 3
  elseif op == 'q2a' then
    redis.call('SADD', P .. 'q2:' .. ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  elseif op == 'q2r' then
    redis.call('SREM', P .. 'q2:' .. ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  elseif op == 'ret' then
    if ARGV[i + 2] == '' then redis.call('HDEL', P .. 'ret', ARGV[i + 1]) else redis.call('HSET', P .. 'ret', ARGV[i + 1], ARGV[i + 2]) end
    redis.call('XADD', P .. 'log', 'MAXLEN', '~', 100000, '*', 'k', 'ret', 'f', ARGV[i + 1], 'm', me)
    i = i + 3
  elseif op == 'fwd' then
    -- NOMKSTREAM: a drained and deleted inbox is not brought back (see Cluster.adopt).
    redis.call('XADD', ARGV[i + 1], 'NOMKSTREAM', '*', 'd', ARGV[i + 2])
    i = i + 3
  elseif op == 'ack' then
    redis.call('XACK', ARGV[i + 1], 'g', ARGV[i + 2])
    redis.call('XDEL', ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  elseif op == 'radd' then
    if redis.call('HSET', P .. 'routes', ARGV[i + 1] .. '\\0' .. me, 1) == 1 then
      logged = redis.call('XADD', P .. 'log', 'MAXLEN', '~', 100000, '*', 'k', 'radd', 'f', ARGV[i + 1], 'm', me)
    end
    i = i + 2
  elseif op == 'rdel' then
    if redis.call('HDEL', P .. 'routes', ARGV[i + 1] .. '\\0' .. ARGV[i + 2]) == 1 then
      logged = redis.call('XADD', P .. 'log', 'MAXLEN', '~', 100000, '*', 'k', 'rdel', 'f', ARGV[i + 1], 'm', ARGV[i + 2])
    end
    i = i + 3
  elseif op == 'app' then
    redis.call('HSET', P .. 'applied', me, ARGV[i + 1])
    i = i + 2
  elseif op == 'own' then
    local c = ARGV[i + 1]
    local o = redis.call('HMGET', P .. 'o:' .. c, 'owner', 'epoch')
    if o[1] == me and o[2] == ARGV[i + 2] then redis.call('DEL', P .. 'o:' .. c) end
    redis.call('SREM', P .. 'n:' .. me .. ':sess', c)
    i = i + 3
  else
    return redis.error_reply('bad op ' .. tostring(op))
  end
end
return logged`;

/**
 * CONNECT on this node: ARGV = prefix, member, client id. The epoch goes up by one and this node owns the
 * client id. Returns {previous owner, epoch, previous owner alive (1/0), session record exists (1/0)}.
 * Simultaneous CONNECTs on two nodes are ordered here: the later one has the higher epoch and wins.
 */
export const CLAIM = `local P = ARGV[1]
local me = ARGV[2]
local c = ARGV[3]
${NOW}
${FENCE}
local o = redis.call('HMGET', P .. 'o:' .. c, 'owner', 'epoch')
local epoch = (tonumber(o[2]) or 0) + 1
redis.call('HSET', P .. 'o:' .. c, 'owner', me, 'epoch', epoch)
local prev = o[1] or ''
local alive = 0
if prev ~= '' and prev ~= me then
  local pl = redis.call('ZSCORE', P .. 'nodes', prev)
  if pl and tonumber(pl) >= now then alive = 1 end
end
redis.call('SADD', P .. 'n:' .. me .. ':sess', c)
return {prev, epoch, alive, redis.call('EXISTS', P .. 's:' .. c)}`;

/** A dead node's client id: ARGV = prefix, member (adopter), dead member, client id. Returns the new epoch, or 0 if someone else owns it now. */
export const ADOPT = `local P = ARGV[1]
local me = ARGV[2]
local dead = ARGV[3]
local c = ARGV[4]
${NOW}
${FENCE}
local o = redis.call('HMGET', P .. 'o:' .. c, 'owner', 'epoch')
if o[1] ~= dead then return 0 end
local epoch = (tonumber(o[2]) or 0) + 1
redis.call('HSET', P .. 'o:' .. c, 'owner', me, 'epoch', epoch)
redis.call('SADD', P .. 'n:' .. me .. ':sess', c)
return epoch`;

/**
 * Renew this node's lease: ARGV = prefix, member, lease ms, generation, first (1 on the first call).
 * Fails if the lease lapsed and was taken away (a janitor declared this node dead), or if Redis lost its data
 * (the generation key is gone or different): in both cases the node must fence itself.
 */
export const RENEW = `local P = ARGV[1]
local me = ARGV[2]
${NOW}
local gen = redis.call('GET', P .. 'gen')
if ARGV[5] == '1' then
  if not gen then redis.call('SET', P .. 'gen', ARGV[4]); gen = ARGV[4] end
  redis.call('ZADD', P .. 'nodes', now + tonumber(ARGV[3]), me)
  return {gen, now}
end
if gen ~= ARGV[4] then return redis.error_reply('FENCED Redis lost its data (generation changed)') end
local lease = redis.call('ZSCORE', P .. 'nodes', me)
if (not lease) or tonumber(lease) < now then return redis.error_reply('FENCED this node lost its lease') end
redis.call('ZADD', P .. 'nodes', now + tonumber(ARGV[3]), me)
return {gen, now}`;

/** Nodes whose lease has passed: ARGV = prefix. */
export const DEAD = `local P = ARGV[1]
${NOW}
return redis.call('ZRANGEBYSCORE', P .. 'nodes', '-inf', '(' .. now)`;

/**
 * A page of a session's queue: ARGV = prefix, client id, from seq, limit, max bytes (-1 = no limit).
 * Returns a flat list: blob, released (1/0), ...
 */
export const READ_QUEUE = `local P = ARGV[1]
local c = ARGV[2]
local seqs = redis.call('ZRANGEBYSCORE', P .. 'qz:' .. c, ARGV[3], '+inf', 'LIMIT', 0, tonumber(ARGV[4]))
local maxb = tonumber(ARGV[5])
local out = {}
local total = 0
for _, s in ipairs(seqs) do
  local rel = redis.call('SISMEMBER', P .. 'qr:' .. c, s)
  local b = 0
  if rel == 0 then b = tonumber(redis.call('HGET', P .. 'qb:' .. c, s) or '0') end
  if maxb >= 0 and #out > 0 and total + b > maxb then break end
  total = total + b
  out[#out + 1] = redis.call('HGET', P .. 'q:' .. c, s)
  out[#out + 1] = rel
end
return out`;
