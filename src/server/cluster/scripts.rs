//! The Lua scripts a cluster node runs in Redis: each is one atomic step, so two nodes can never
//! interleave inside it (a session's `seq` and its stream, a pair's claim and record, a user's
//! socket count).
//!
//! Keys (`{s}` a session id in hex, `{d}` a destination `user:{id}` or `chat:{id}`):
//! `sl:s:{s}` hash {user, seq, owner}; `sl:s:{s}:x` the session's stream (entry id `seq-0`,
//! fields `at` ms and `t` the event's encoded tail); `sl:s:{s}:rooms` set; `sl:m:{d}` set of
//! member sessions; `sl:d:{pair}` hash id → ack (`=` then the ack, `~` then a claim's expiry ms)
//! plus `floor`, and `sl:d:{pair}:q` list of processed ids; `sl:c:{user}` zset of live sockets
//! (score: lease expiry ms); `sl:nodes` zset of nodes (score: lease expiry ms); `sl:un:{user}`
//! unread list; `sl:p:{room}:{user}` set of nodes where the user is present; `sl:pr:{room}` set
//! of present users. Scripts touch keys they derive from their arguments, so they need a single
//! Redis (or one primary), not Redis Cluster.

use redis::Script;

/// `record(pair, order, id, ack, window, retention)`: a processed id's ack kept in the pair
/// hash (`=` then the ack, `''` for the plain ok) and its place in the pair's order list; the
/// oldest past the window are forgotten into the floor. Recording an id again changes nothing
/// (a fan-out that recorded it, then the node's record after it).
const RECORD_FN: &str = r"
local function record(pair, order, id, ack, window, retention)
  local before = redis.call('HGET', pair, id)
  if before and string.sub(before, 1, 1) == '=' then return 1 end
  redis.call('HSET', pair, id, '=' .. ack)
  redis.call('RPUSH', order, id)
  while redis.call('LLEN', order) > tonumber(window) do
    local old = redis.call('LPOP', order)
    redis.call('HDEL', pair, old)
    local floor = tonumber(redis.call('HGET', pair, 'floor') or '0')
    if tonumber(old) > floor then redis.call('HSET', pair, 'floor', old) end
  end
  redis.call('PEXPIRE', pair, retention)
  redis.call('PEXPIRE', order, retention)
  return 1
end
";

/// KEYS: members set, and for a send the pair hash and pair order list. ARGV: tail, stream
/// MAXLEN, stream TTL ms, channel, now ms, except user, and for a send its id, ack text,
/// window, retention ms. Gives each live member session its next `seq`, appends the event to
/// its stream, publishes one bus message naming every (session, seq), and for a send records
/// its ack in the same step (so a node that stops waiting for the answer cannot have the send
/// processed twice: its resend is answered from the pair); returns how many sessions.
const FANOUT: &str = r"
local members = redis.call('SMEMBERS', KEYS[1])
local to = {}
for _, s in ipairs(members) do
  local meta = 'sl:s:' .. s
  local user = redis.call('HGET', meta, 'user')
  if not user then
    redis.call('SREM', KEYS[1], s)
  elseif user ~= ARGV[6] then
    local seq = redis.call('HINCRBY', meta, 'seq', 1)
    local stream = meta .. ':x'
    redis.call('XADD', stream, 'MAXLEN', '~', ARGV[2], seq .. '-0', 'at', ARGV[5], 't', ARGV[1])
    redis.call('PEXPIRE', stream, ARGV[3])
    to[#to + 1] = {s, seq}
  end
end
if #to > 0 then
  redis.call('PUBLISH', ARGV[4], cjson.encode({k = 'd', tail = ARGV[1], to = to}))
end
if KEYS[2] then record(KEYS[2], KEYS[3], ARGV[7], ARGV[8], ARGV[9], ARGV[10]) end
return #to
";

/// KEYS: members set. ARGV: channel, message, max members (0: any). Publishes a volatile
/// event unless the room is larger than the max; returns 1 if published.
const VOLATILE: &str = r"
local max = tonumber(ARGV[3])
if max > 0 and redis.call('SCARD', KEYS[1]) > max then return 0 end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
";

/// KEYS: pair hash. ARGV: id, retention ms, claim expiry ms, now ms. Returns `{'ack', text}`,
/// `{'expired'}`, `{'pending'}` (another socket is processing it right now) or `{'new'}` (now
/// claimed by the caller).
const CLAIM: &str = r"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then
  if string.sub(v, 1, 1) == '=' then return {'ack', string.sub(v, 2)} end
  if tonumber(string.sub(v, 2)) > tonumber(ARGV[4]) then return {'pending'} end
end
local floor = tonumber(redis.call('HGET', KEYS[1], 'floor') or '0')
if not v and tonumber(ARGV[1]) <= floor then return {'expired'} end
redis.call('HSET', KEYS[1], ARGV[1], '~' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {'new'}
";

/// KEYS: pair hash, pair order list. ARGV: id, ack text ('' for the plain ok), window,
/// retention ms. Records a processed id (see `RECORD_FN`).
const RECORD: &str = "return record(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])";

/// KEYS: pair hash. ARGV: id. Drops a claim that was not processed (the broker failed).
const UNCLAIM: &str = r"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.sub(v, 1, 1) == '~' then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
";

/// KEYS: the user's socket zset. ARGV: now ms, lease ms, member, max. Counts a socket unless
/// the user has `max` whose lease has not run out; returns 1 if counted.
const RESERVE: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// KEYS: session hash, the user's members set. ARGV: user, node, seq at least, TTL ms,
/// session id. Registers (or re-registers after Redis lost it) a session of this node.
const REGISTER: &str = r"
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'owner', ARGV[2])
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '-1')
if seq < tonumber(ARGV[3]) then redis.call('HSET', KEYS[1], 'seq', ARGV[3]) end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[5])
return 1
";

/// KEYS: nodes-of-user set, present users set, nodes zset. ARGV: node, now ms, user, 1 for up
/// and 0 for down. Returns how many live nodes have the user present afterwards.
const PRESENCE: &str = r"
if ARGV[4] == '1' then
  redis.call('SADD', KEYS[1], ARGV[1])
else
  redis.call('SREM', KEYS[1], ARGV[1])
end
local alive = 0
for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local lease = redis.call('ZSCORE', KEYS[3], n)
  if n == ARGV[1] or (lease and tonumber(lease) > tonumber(ARGV[2])) then
    alive = alive + 1
  else
    redis.call('SREM', KEYS[1], n)
  end
end
if alive > 0 then redis.call('SADD', KEYS[2], ARGV[3]) else redis.call('SREM', KEYS[2], ARGV[3]) end
return alive
";

/// KEYS: present users set, nodes zset. ARGV: room, now ms, max listed. Returns
/// `{count, user…}` of the users present on a live node.
const PRESENT: &str = r"
local users = {}
local count = 0
for _, u in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local here = false
  for _, n in ipairs(redis.call('SMEMBERS', 'sl:p:' .. ARGV[1] .. ':' .. u)) do
    local lease = redis.call('ZSCORE', KEYS[2], n)
    if lease and tonumber(lease) > tonumber(ARGV[2]) then here = true end
  end
  if here then
    count = count + 1
    if #users < tonumber(ARGV[3]) then users[#users + 1] = u end
  end
end
local out = {tostring(count)}
for _, u in ipairs(users) do out[#out + 1] = u end
return out
";

/// KEYS: unread list. ARGV: id, max kept. Adds an id once (newest first).
const UNREAD_ADD: &str = r"
redis.call('LREM', KEYS[1], 0, ARGV[1])
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return 1
";

/// KEYS: unread list. ARGV: id. Removes it; returns the count left.
const UNREAD_REMOVE: &str = r"
redis.call('LREM', KEYS[1], 0, ARGV[1])
return redis.call('LLEN', KEYS[1])
";

/// Every script, loaded once per node (redis-rs sends EVALSHA and loads on NOSCRIPT).
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) fanout: Script,
    pub(crate) volatile: Script,
    pub(crate) claim: Script,
    pub(crate) record: Script,
    pub(crate) unclaim: Script,
    pub(crate) reserve: Script,
    pub(crate) register: Script,
    pub(crate) presence: Script,
    pub(crate) present: Script,
    pub(crate) unread_add: Script,
    pub(crate) unread_remove: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            fanout: Script::new(&format!("{RECORD_FN}{FANOUT}")),
            volatile: Script::new(VOLATILE),
            claim: Script::new(CLAIM),
            record: Script::new(&format!("{RECORD_FN}{RECORD}")),
            unclaim: Script::new(UNCLAIM),
            reserve: Script::new(RESERVE),
            register: Script::new(REGISTER),
            presence: Script::new(PRESENCE),
            present: Script::new(PRESENT),
            unread_add: Script::new(UNREAD_ADD),
            unread_remove: Script::new(UNREAD_REMOVE),
        }
    }
}
