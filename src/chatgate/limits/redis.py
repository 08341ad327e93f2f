"""The shared limiter: the same sliding windows in Redis, each decision one Lua call (atomic).

Time comes from the Redis server (``TIME``), so replicas with skewed clocks still agree. Keys
expire on their own once a scope goes quiet.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError

from chatgate.limits.base import WINDOW, Decision, LimiterUnavailable, ScopeLimit, ScopeState
from chatgate.redis_client import SharedRedis

__all__ = ["RedisLimiter"]

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rid, tokens, lease, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n = #KEYS / 5
local horizon = now - window
local used = {}
local refusal = nil
for i = 0, n - 1 do
  local r, tz, th, tt, c = KEYS[i*5+1], KEYS[i*5+2], KEYS[i*5+3], KEYS[i*5+4], KEYS[i*5+5]
  local rpm, tpm, conc = tonumber(ARGV[5+i*3]), tonumber(ARGV[6+i*3]), tonumber(ARGV[7+i*3])
  redis.call('ZREMRANGEBYSCORE', r, '-inf', horizon)
  local expired = redis.call('ZRANGEBYSCORE', tz, '-inf', horizon)
  for s = 1, #expired, 500 do
    local part = {unpack(expired, s, math.min(s + 499, #expired))}
    local freed = 0
    for _, a in ipairs(redis.call('HMGET', th, unpack(part))) do
      freed = freed + (tonumber(a) or 0)
    end
    redis.call('DECRBY', tt, freed)
    redis.call('HDEL', th, unpack(part))
  end
  redis.call('ZREMRANGEBYSCORE', tz, '-inf', horizon)
  redis.call('ZREMRANGEBYSCORE', c, '-inf', now)
  local ur, uc = redis.call('ZCARD', r), redis.call('ZCARD', c)
  local ut = tonumber(redis.call('GET', tt) or '0')
  used[i + 1] = {ur, ut, uc}
  if refusal == nil then
    if rpm > 0 and ur + 1 > rpm then
      local oldest = redis.call('ZRANGE', r, 0, 0, 'WITHSCORES')
      refusal = {i, 'rpm', tonumber(oldest[2]) + window - now, 0}
    elseif tpm > 0 and tokens > tpm then
      refusal = {i, 'tpm', 0, 1}
    elseif tpm > 0 and ut + tokens > tpm then
      local excess = ut + tokens - tpm
      local at = now
      local entries = redis.call('ZRANGE', tz, 0, -1, 'WITHSCORES')
      for j = 1, #entries, 2 do
        excess = excess - (tonumber(redis.call('HGET', th, entries[j])) or 0)
        at = tonumber(entries[j + 1])
        if excess <= 0 then break end
      end
      refusal = {i, 'tpm', math.max(0, at + window - now), 0}
    elseif conc > 0 and uc + 1 > conc then
      local first = redis.call('ZRANGE', c, 0, 0, 'WITHSCORES')
      refusal = {i, 'concurrent', math.max(0.05, tonumber(first[2]) - now), 0}
    end
  end
end
local out = {}
if refusal == nil then
  out[1] = '1'; out[2] = '0'; out[3] = ''; out[4] = '0'
else
  out[1] = '0'; out[2] = tostring(refusal[3]); out[3] = refusal[1] .. ':' .. refusal[2]
  out[4] = tostring(refusal[4])
end
for i = 0, n - 1 do
  local r, tz, th, tt, c = KEYS[i*5+1], KEYS[i*5+2], KEYS[i*5+3], KEYS[i*5+4], KEYS[i*5+5]
  local rpm, tpm, conc = tonumber(ARGV[5+i*3]), tonumber(ARGV[6+i*3]), tonumber(ARGV[7+i*3])
  local ur, ut = used[i + 1][1], used[i + 1][2]
  if refusal == nil then
    local keep = math.ceil(window * 2)
    if rpm > 0 then redis.call('ZADD', r, now, rid); redis.call('EXPIRE', r, keep); ur = ur + 1 end
    if tpm > 0 then
      redis.call('ZADD', tz, now, rid); redis.call('HSET', th, rid, tokens)
      redis.call('INCRBY', tt, tokens); ut = ut + tokens
      redis.call('EXPIRE', tz, keep); redis.call('EXPIRE', th, keep); redis.call('EXPIRE', tt, keep)
    end
    if conc > 0 then
      redis.call('ZADD', c, now + lease, rid); redis.call('EXPIRE', c, math.ceil(lease + window))
    end
  end
  local newest_r = redis.call('ZRANGE', r, -1, -1, 'WITHSCORES')
  local newest_t = redis.call('ZRANGE', tz, -1, -1, 'WITHSCORES')
  local reset_r, reset_t = 0, 0
  if #newest_r > 0 then reset_r = math.max(0, tonumber(newest_r[2]) + window - now) end
  if #newest_t > 0 then reset_t = math.max(0, tonumber(newest_t[2]) + window - now) end
  table.insert(out, tostring(ur)); table.insert(out, tostring(ut))
  table.insert(out, tostring(reset_r)); table.insert(out, tostring(reset_t))
end
return out
"""

_FINISH = """
local rid, tokens = ARGV[1], tonumber(ARGV[2])
for i = 1, #KEYS, 3 do
  local old = redis.call('HGET', KEYS[i], rid)
  if old then
    redis.call('HSET', KEYS[i], rid, tokens)
    redis.call('INCRBY', KEYS[i + 1], tokens - tonumber(old))
  end
  redis.call('ZREM', KEYS[i + 2], rid)
end
return 1
"""


class RedisLimiter:
    def __init__(self, redis: SharedRedis, *, prefix: str):
        self._redis = redis
        self._prefix = prefix
        self._acquire = redis.client.register_script(_ACQUIRE)
        self._finish = redis.client.register_script(_FINISH)

    def _keys(self, scope: str) -> list[str]:
        base = f"{self._prefix}:rl:{{{scope}}}"
        return [f"{base}:r", f"{base}:t", f"{base}:th", f"{base}:tt", f"{base}:c"]

    async def acquire(
        self, request_id: str, limits: list[ScopeLimit], tokens: int, lease_seconds: float
    ) -> Decision:
        keys: list[str] = []
        args: list[Any] = [request_id, tokens, lease_seconds, WINDOW]
        for limit in limits:
            keys += self._keys(limit.scope)
            args += [limit.rpm or 0, limit.tpm or 0, limit.concurrent or 0]
        try:
            async with self._redis.deadline():
                raw = await self._acquire(keys=keys, args=args)
        except TimeoutError:
            raise LimiterUnavailable("no answer from Redis within redis.timeout") from None
        except RedisError as exc:
            raise LimiterUnavailable(str(exc)) from exc
        out = [item.decode() if isinstance(item, bytes) else str(item) for item in raw]
        admitted, retry_after, refused, never = out[0] == "1", float(out[1]), out[2], out[3] == "1"
        states = []
        for i, limit in enumerate(limits):
            used_r, used_t, reset_r, reset_t = out[4 + i * 4 : 8 + i * 4]
            states.append(
                ScopeState(
                    scope=limit.scope,
                    rpm=limit.rpm,
                    remaining_requests=None
                    if limit.rpm is None
                    else max(0, limit.rpm - int(used_r)),
                    reset_requests=float(reset_r),
                    tpm=limit.tpm,
                    remaining_tokens=None if limit.tpm is None else max(0, limit.tpm - int(used_t)),
                    reset_tokens=float(reset_t),
                )
            )
        refused_by = None
        if not admitted:
            index, dimension = refused.split(":", 1)
            refused_by = f"{limits[int(index)].scope}:{dimension}"
        return Decision(admitted, retry_after, refused_by, tuple(states), never)

    async def finish(self, request_id: str, limits: list[ScopeLimit], tokens: int) -> None:
        keys: list[str] = []
        for limit in limits:
            if limit.tpm is not None or limit.concurrent is not None:
                scope_keys = self._keys(limit.scope)
                keys += [scope_keys[2], scope_keys[3], scope_keys[4]]
        if not keys:
            return
        try:
            async with self._redis.deadline():
                await self._finish(keys=keys, args=[request_id, tokens])
        except TimeoutError:
            raise LimiterUnavailable("no answer from Redis within redis.timeout") from None
        except RedisError as exc:
            raise LimiterUnavailable(str(exc)) from exc

    async def close(self) -> None:
        """Nothing of its own to close: the Redis client is shared (``RedisClients``)."""
