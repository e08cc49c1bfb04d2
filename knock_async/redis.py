"""One rate-limit budget shared by every process and host of a Knock environment, in Redis.

Knock's limits (5 bulk POSTs/s, 200 operation GETs/s) are per *environment*: four worker
processes or ten queue workers on three hosts that call with keys of one environment share
them. ``AdaptiveRateLimiter`` paces one process; ``RedisRateLimiter`` paces all of them::

    from knock_async.redis import RedisRateLimiter

    limiter = RedisRateLimiter.from_url("redis://localhost:6379/0", key_prefix="knock:prod")
    async with limiter, KnockClient(rate_limits=limiter) as knock:
        ...

Needs the ``redis`` extra (``pip install 'knock-async[redis]'``, redis-py's asyncio client).

How it works:

* **The same arithmetic, kept in Redis.** Each tier's pacing state (GCRA's theoretical arrival
  time, the adaptive rate, the hold after a 429) is one Redis hash, advanced by one Lua script:
  atomic, and on the Redis server's clock (``TIME``), so hosts whose clocks disagree still
  agree on the schedule. The script is ``PacingState`` (``knock_async._ratelimit``) written in
  Lua; the tests check the two against each other step by step.
* **A 429 seen by one process slows all of them,** because the slow-down is written to the
  shared state at once; they recover together, at ``RateLimits.recovery_per_second``. The
  recovery is credited when the next request is granted (the in-process limiter credits it on
  each answer); that saves a round trip per request and climbs the same line.
* **Slots are booked shortly before they are due** (50 ms plus the last round trip to Redis
  ahead): far enough to absorb the round trip, near enough that a 429 still slows the
  requests queued behind it. Within one process, the requests of a tier queue FIFO and only
  the head talks to Redis, one round trip per grant: a process gets at most one grant per
  round trip and tier (about 8/s from a Redis 60 ms away), whatever the configured rate.
* **Redis unreachable or slow** (no answer within ``timeout``): the limiter paces this process
  alone at ``fallback_share`` of the configured rates (never unlimited; its first request a
  full fallback interval after the last shared one, plus a random part of one, so that
  processes losing Redis together do not all send at once), logs one warning, and tries Redis
  again every ``probe_interval`` seconds; when it answers, it logs that and shares again, its
  first shared slot a full interval after the last fallback grant. The limiter never sends
  anything itself, so a Redis failure can delay a request but never drop or repeat one.
* **Whatever Redis holds, never faster than the configured rate:** the script checks every
  value it reads and replaces a damaged one (or a key of another type) with a safe state in
  the same atomic step (see ``_SCRIPT``).
* **Bad configuration fails loudly:** a URL that is not ``redis://``, ``rediss://`` or
  ``unix://`` is refused by ``from_url``; a Redis that cannot be reached within
  ``connect_timeout`` or refuses the login or the database makes the first ``acquire`` (or
  ``async with``) raise ``RedisLimiterError``. The fallback is for outages, slowness included.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
from collections.abc import AsyncGenerator, Awaitable, Callable
from types import TracebackType
from typing import Any, Final, Self

import attrs
from yarl import URL

try:
    import redis.asyncio
    import redis.exceptions
except ImportError as exc:  # tests/test_missing_extras.py runs this without redis-py
    raise ImportError("knock_async.redis needs redis-py: pip install 'knock-async[redis]'") from exc

from ._environment import canonical_base_url
from ._ratelimit import AdaptiveRateLimiter, PacingState, RateLimits, Tier
from ._validate import fraction, positive

__all__ = ["RedisLimiterError", "RedisRateLimiter", "check_url", "environment_key_prefix"]

logger = logging.getLogger("knock_async.redis")

_SCHEMES: Final = ("redis", "rediss", "unix")

# Book a slot once it is this close: more than a round trip to Redis plus a timer's lateness,
# little enough that a 429 still reaches the requests queued behind the booked ones.
_LOOKAHEAD: Final = 0.05

# What counts as "Redis did not answer": the client's connection and timeout errors, any
# other error Redis answered with (OOM, a replica that is read-only, LOADING), and our bound.
_UNAVAILABLE: Final = (redis.exceptions.RedisError, OSError, TimeoutError)
# What says the configuration is wrong even once connected: no login, or commands forbidden.
_REFUSED: Final = (redis.exceptions.AuthenticationError, redis.exceptions.NoPermissionError)

# The longest hold a 429 puts on the shared budget: a longer Retry-After holds every process
# this long (the caller's own wait is its business). It also bounds how far ahead a stored
# hold can be: anything further is not something this limiter wrote.
_MAX_HOLD: Final = 120.0
# Clock steps of the Redis server's clock that a stored time may be ahead by and still count.
_CLOCK_SLACK: Final = 1.0

# KEYS[1]: the tier's hash. ARGV: operation ("acquire" | "penalty" | "state"), configured rate
# (requests/s), burst, slowdown_factor, min_rate_fraction, recovery_per_second,
# slowdown_cooldown, retry_after ("" if none), lookahead (s), now ("" = the server's TIME; the
# tests pass one to compare with PacingState), earliest ("" or seconds from now before which
# no slot is given). Fields never written read as -inf, as in PacingState.initial. Replies
# are strings (Redis would truncate Lua numbers to integers); the last one names the fields
# that were repaired ("" when none).
#
# Whatever the hash holds is checked before use, because a negative rate, a NaN or a time
# far ahead would otherwise grant at any speed or block for good: a value that is
# non-numeric, non-finite, negative, or further ahead than this script ever writes (see
# README, "Corrupted state") is replaced by a safe one, as if the tier's budget had just been
# spent at the lowest rate, and the hash is rewritten in the same atomic step. A key of
# another type is deleted and treated the same way.
_SCRIPT: Final = """
local key = KEYS[1]
local op = ARGV[1]
local configured = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local factor = tonumber(ARGV[4])
local min_fraction = tonumber(ARGV[5])
local recovery = tonumber(ARGV[6])
local cooldown = tonumber(ARGV[7])
local retry_after = tonumber(ARGV[8])
local lookahead = tonumber(ARGV[9])
local now = tonumber(ARGV[10])
local earliest = tonumber(ARGV[11])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local NEG = -math.huge
local MAX_HOLD = @MAX_HOLD@
local SLACK = @CLOCK_SLACK@
local floor = configured * min_fraction

local horizon = math.max(MAX_HOLD, 1 / floor)  -- the furthest hold a 429 writes

local repaired = {}
local h = redis.pcall('HMGET', key, 'rate', 'tat', 'hold', 'rfrom', 'lslow')
local wrongtype = type(h) ~= 'table' or h.err ~= nil
if wrongtype then
  -- Some other value sits under our key: every field counts as damaged.
  redis.call('DEL', key)
  h = {'?', '?', '?', '?', '?'}
end

-- A stored time: nil when absent, false when it cannot be right.
local function stored(raw, latest)
  if raw == false then return nil end
  local x = tonumber(raw)
  if x == nil or x ~= x or x < 0 or x > latest then return false end
  return x
end

local rate = tonumber(h[1])
local rfrom = stored(h[4], now + SLACK)
if h[1] == false and not (h[2] or h[3] or h[4] or h[5]) then
  rate = configured  -- a fresh tier
elseif rate == nil or rate ~= rate or rate <= 0 or rate == math.huge then
  table.insert(repaired, 'rate')
  rate, rfrom = floor, now
else
  -- Processes with other limits may have written it: clamp, it is not damage.
  rate = math.max(floor, math.min(rate, configured))
end
if rfrom == false then
  table.insert(repaired, 'rfrom')
  rfrom = now
end
rfrom = rfrom or NEG

local hold = stored(h[3], now + horizon + SLACK)
if hold == false then table.insert(repaired, 'hold') end
hold = hold or NEG

-- tat - now, in requests at the current rate, never exceeds horizon * configured + burst:
-- a grant books at most lookahead + burst intervals ahead, a 429 adds its hold, and changes
-- of the rate rescale the backlog in requests.
local tat = stored(h[2], math.max(now, hold) + (horizon * configured + burst) / rate + SLACK)
if tat == false then
  table.insert(repaired, 'tat')
  tat = now + lookahead + burst / rate
end
tat = tat or NEG

local lslow = stored(h[5], now + SLACK)
if lslow == false then table.insert(repaired, 'lslow') end
lslow = lslow or NEG

if wrongtype then repaired = {'type'} end

local function f(x) return string.format('%.17g', x) end
local function g(x) if x > NEG then return f(x) end return '' end
local damage = table.concat(repaired, ',')

if op == 'state' then
  return {f(now), f(rate), g(tat), g(hold), g(rfrom), g(lslow), damage}
end

-- gcra_rescale
local function rescale(old_interval, new_interval)
  if tat > now then tat = now + (tat - now) * (new_interval / old_interval) end
end

local function save()
  if #repaired > 0 then redis.call('DEL', key) end  -- no bad field may survive
  local fields = {'rate', f(rate)}
  for name, value in pairs({tat = tat, hold = hold, rfrom = rfrom, lslow = lslow}) do
    if value > NEG then
      table.insert(fields, name)
      table.insert(fields, f(value))
    end
  end
  redis.call('HSET', key, unpack(fields))
  -- An idle environment's state expires a minute after it stops mattering.
  local until_ = math.max(tat, hold, now)
  redis.call('PEXPIRE', key, math.ceil((until_ - now + 60) * 1000))
end

if op == 'penalty' then
  -- PacingState.rate_limited
  local new_rate = rate
  if now - lslow >= cooldown then
    new_rate = math.max(floor, rate * factor)
    lslow = now
  end
  local interval = 1 / new_rate
  rescale(1 / rate, interval)
  rate = new_rate
  local hold_for = interval
  if retry_after ~= nil and retry_after > hold_for and retry_after < math.huge then
    hold_for = math.min(retry_after, math.max(MAX_HOLD, interval))
  end
  hold = math.max(hold, now + hold_for)
  tat = math.max(tat, hold + (burst - 1) * interval)
  rfrom = now
  save()
  return {'0', f(0), f(rate), damage}
end

-- op == 'acquire'. First PacingState.succeeded: the recovery since the last credit.
if rate < configured then
  local elapsed = math.max(0, now - rfrom)
  local new_rate = math.min(configured, rate + configured * recovery * elapsed)
  rescale(1 / rate, 1 / new_rate)
  rate = new_rate
  rfrom = now
end
-- Then PacingState.reserve, if the slot is close enough to book.
local interval = 1 / rate
local slot = math.max(math.max(now, hold), tat - (burst - 1) * interval)
if earliest ~= nil and earliest > 0 then slot = math.max(slot, now + earliest) end
local granted = '0'
if slot <= now + lookahead then
  tat = math.max(tat, slot) + interval
  granted = '1'
end
save()
return {granted, f(slot - now), f(rate), damage}
""".replace("@MAX_HOLD@", repr(_MAX_HOLD)).replace("@CLOCK_SLACK@", repr(_CLOCK_SLACK))


class RedisLimiterError(Exception):
    """The Redis behind a ``RedisRateLimiter`` cannot be reached, or refuses the login or the
    database: its configuration is wrong. (A Redis that is only slow is an outage instead:
    the limiter paces this process on its fallback.)"""


def environment_key_prefix(api_key: str, *, base_url: str) -> str:
    """A Redis key prefix for the Knock environment of ``api_key`` at ``base_url``.

    A hash, never the key itself: anyone who can read Redis must not learn the key. Every
    process using the same key and base URL gets the same prefix, so they share one budget;
    the URL is normalised first (``canonical_base_url``: ``https://API.knock.app:443/`` is
    ``https://api.knock.app``), so every spelling of one environment is one budget. (Keys of
    one environment that differ still get different prefixes: give those processes one
    explicit ``key_prefix`` instead.)
    """
    if not isinstance(api_key, str) or not api_key:
        raise ValueError("api_key must be a non-empty string")
    digest = hashlib.sha256(f"{canonical_base_url(base_url)}\n{api_key}".encode()).hexdigest()
    return f"knock_async:{digest[:24]}"


def check_url(url: object) -> str:
    """``url`` if it can name a Redis (``redis://``, ``rediss://``, ``unix://``), else a
    ``ValueError`` that shows the scheme but never the rest (which may hold a password)."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    try:
        parsed = URL(url)
    except ValueError as exc:
        raise ValueError(f"url is not a valid Redis URL: {exc}") from None
    if parsed.scheme not in _SCHEMES:
        # Only the scheme is echoed: the rest of the URL may carry a password.
        raise ValueError(
            f"url must start with redis://, rediss:// or unix://, got scheme {parsed.scheme!r}"
        )
    if parsed.scheme != "unix" and not parsed.host:
        raise ValueError("url names no host: use redis://HOST:PORT/DB")
    return url


def _shared_state(limits: RateLimits, tier: Tier, reply: list[Any]) -> PacingState:
    """The reply of the script's ``state`` operation as a ``PacingState`` on Redis's clock."""

    def number(raw: Any) -> float:
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return float(text) if text else -math.inf

    _, rate, tat, hold, rfrom, lslow = (number(part) for part in reply[:6])
    return PacingState(
        limits=limits,
        tier=tier,
        rate=rate,
        tat=tat,
        hold_until=hold,
        recovery_from=rfrom,
        last_slowdown=lslow,
    )


class _Link:
    """What the limiter holds on one event loop: a single-connection client per tier and the
    tiers' locks. Connections and locks belong to the loop they were made on; a limiter used
    by a second ``asyncio.run`` gets a new link, and the old one is closed when its loop shuts
    down (``_keeper``), as the client does with its session.

    A connection of its own per tier means a connection is opened (under ``connect_timeout``)
    before a command is sent (under ``timeout``): the handshake never eats a command's bound.
    """

    __slots__ = ("base", "connecting", "keeper", "lanes", "locks", "loop", "owned")

    def __init__(self, base: redis.asyncio.Redis, *, owned: bool) -> None:
        self.loop = asyncio.get_running_loop()
        self.base = base
        self.owned = owned
        self.lanes = {tier: base.client() for tier in Tier}
        self.locks = {tier: asyncio.Lock() for tier in Tier}
        self.connecting = {tier: asyncio.Lock() for tier in Tier}
        self.keeper: AsyncGenerator[None, None] | None = None

    async def close(self) -> None:
        for lane in self.lanes.values():
            connection = lane.connection
            if connection is not None:
                # Back to the pool closed: a connection of this loop is no use to another.
                await connection.disconnect()
            await lane.aclose()
        if self.owned:
            await self.base.aclose()


async def _keeper(link: _Link) -> AsyncGenerator[None, None]:
    """Closes ``link`` when its event loop shuts down (``asyncio.run`` closes the async
    generators still alive before it closes the loop)."""
    try:
        yield
    finally:
        await link.close()


class RedisRateLimiter:
    """A ``RateLimiter`` whose budget lives in Redis, shared by every process that uses it.

    Build it with ``from_url`` or from your own ``redis.asyncio.Redis`` (never closed by the
    limiter). ``key_prefix`` names the shared budget: one per Knock environment (a plain name
    such as ``"knock:prod"``, or ``environment_key_prefix(api_key, base_url=...)``). Every
    process with the same prefix shares the ``limits`` (``RateLimits``; default Knock's 5 POST/s
    and 200 GET/s), so give them all the same ``limits``.

    ``connect_timeout`` bounds opening a connection (TCP, TLS, login, database), ``timeout``
    each command on an open one: a Redis a few tens of milliseconds away fits the defaults.
    Past ``timeout`` (or on a connection error) the process paces itself at
    ``fallback_share`` of the rates until a probe, every ``probe_interval`` seconds, gets an
    answer. Set ``fallback_share`` to about one over the number of processes.
    ``RedisLimiterError`` is only for a Redis that cannot be reached (nothing answers within
    ``connect_timeout``) or refuses the login, the database or the commands.

    Use it as an async context manager (or call ``aclose``): entering checks that Redis answers
    and loads the script; leaving waits for the slow-downs still being written and closes the
    limiter's connections (and a pool ``from_url`` opened). The limiter holds one connection
    per tier. Like the client, it may be used from one event loop after another (a second
    ``asyncio.run``): a limiter built by ``from_url`` opens new connections on each loop; with
    your own client, that client must work on the new loop.

    Cancelling ``acquire`` never holds up the requests queued behind it. A cancellation that
    lands after a slot was booked in Redis (50 ms plus one round trip to Redis before it is
    due) leaves that slot unused: the shared budget loses one request's worth, it is never
    overspent.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        key_prefix: str,
        limits: RateLimits | None = None,
        timeout: float = 0.25,
        connect_timeout: float = 1.0,
        fallback_share: float = 0.2,
        probe_interval: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if not isinstance(client, redis.asyncio.Redis):
            raise TypeError(
                f"client must be a redis.asyncio.Redis (or use RedisRateLimiter.from_url), "
                f"got {type(client).__name__}"
            )
        if not isinstance(key_prefix, str) or not key_prefix:
            raise ValueError("key_prefix must be a non-empty string naming the Knock environment")
        if limits is None:
            limits = RateLimits()
        if not isinstance(limits, RateLimits):
            raise TypeError(f"limits must be a RateLimits or None, got {type(limits).__name__}")
        self._timeout = float(positive("timeout", timeout))
        self._connect_timeout = float(positive("connect_timeout", connect_timeout))
        share = float(fraction("fallback_share", fallback_share))
        self._probe_interval = float(positive("probe_interval", probe_interval))
        self._client = client
        # from_url's: a new client for each event loop after the first (None: the caller's).
        self._factory: Callable[[], redis.asyncio.Redis] | None = None
        self._client_used = False
        self._key_prefix = key_prefix
        self._limits = limits
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep if sleep is None else sleep
        fallback_limits = attrs.evolve(
            limits,
            post_per_second=limits.post_per_second * share,
            get_per_second=limits.get_per_second * share,
        )
        self._fallback = AdaptiveRateLimiter(fallback_limits, sleep=sleep)
        self._script = client.register_script(_SCRIPT)
        # Built once: the arguments of an acquire are the same every time.
        self._keys = {tier: [self.key(tier)] for tier in Tier}
        self._acquire_args = {tier: self._args("acquire", tier) for tier in Tier}
        self._link: _Link | None = None
        self._penalties: set[asyncio.Task[None]] = set()
        self._reached = False  # Redis has answered at least once
        self._degraded = False  # pacing on the fallback until the next probe answers
        self._probe_at = -math.inf
        # After Redis is lost, each tier's first request on the fallback waits until this.
        self._fallback_from: dict[Tier, float] = {}
        # The last fallback grant of each tier (loop time), until the next shared one: the
        # first slot booked in Redis again keeps one interval from it.
        self._fallback_granted: dict[Tier, float] = {}
        self._repairs_seen = False
        # The last round trip of each tier's acquire to Redis, in seconds.
        self._rtt = dict.fromkeys(Tier, 0.0)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        key_prefix: str,
        limits: RateLimits | None = None,
        timeout: float = 0.25,
        connect_timeout: float = 1.0,
        fallback_share: float = 0.2,
        probe_interval: float = 1.0,
    ) -> Self:
        """A limiter with its own connection pool to the Redis at ``url``, closed by ``aclose``
        (and, on each event loop it was used on, when that loop shuts down).

        ``url`` is ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS) or
        ``unix:///path/to/socket``; anything else is a ``ValueError`` here.
        """
        checked = check_url(url)
        timeout = float(positive("timeout", timeout))
        connect_timeout = float(positive("connect_timeout", connect_timeout))

        def connect() -> redis.asyncio.Redis:
            return redis.asyncio.Redis.from_url(
                checked,
                # Only a backstop: the limiter bounds each command by `timeout` and opening a
                # connection, handshake reads included, by `connect_timeout`.
                socket_timeout=connect_timeout + timeout,
                socket_connect_timeout=connect_timeout,
                # The limiter has its own answer to an outage (the fallback and the probe):
                # the client's retries with backoff would only hold requests up.
                retry=None,
            )

        # If the arguments are refused, the client goes unused: it has opened no connection.
        limiter = cls(
            connect(),
            key_prefix=key_prefix,
            limits=limits,
            timeout=timeout,
            connect_timeout=connect_timeout,
            fallback_share=fallback_share,
            probe_interval=probe_interval,
        )
        limiter._factory = connect
        return limiter

    def __repr__(self) -> str:
        mode = "fallback" if self._degraded else "shared"
        return f"<RedisRateLimiter key_prefix={self._key_prefix!r} {mode}>"

    @property
    def limits(self) -> RateLimits:
        return self._limits

    @property
    def key_prefix(self) -> str:
        return self._key_prefix

    @property
    def degraded(self) -> bool:
        """True while Redis is not answering and this process paces itself alone."""
        return self._degraded

    def key(self, tier: Tier | str) -> str:
        """The Redis key holding ``tier``'s shared state."""
        return f"{self._key_prefix}:ratelimit:{Tier(tier)}"

    # ----------------------------------------------------------------------------------------
    # Lifetime

    async def __aenter__(self) -> Self:
        await self.check()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def check(self) -> None:
        """Make sure Redis can be reached and knows the script.

        ``RedisLimiterError`` if no connection opens within ``connect_timeout`` or Redis
        refuses the login, the database or the commands. A Redis that connects but does not
        answer within ``timeout`` is an outage: this process paces itself on the fallback.
        """
        link = await self._current_link()
        try:
            lane = await self._connected(link, Tier.POST)
        except _UNAVAILABLE as exc:
            raise self._config_error(exc) from None
        try:
            async with asyncio.timeout(self._timeout):
                await lane.ping()
            async with asyncio.timeout(self._timeout):
                await lane.script_load(_SCRIPT)
        except _REFUSED as exc:
            raise self._config_error(exc) from None
        except _UNAVAILABLE as exc:
            self._reached = True
            self._lost(exc)
            return
        self._reached = True
        self._answered()

    @staticmethod
    def _config_error(exc: BaseException) -> RedisLimiterError:
        what = "refused" if isinstance(exc, _REFUSED) else "did not answer"
        return RedisLimiterError(
            f"the rate limiter's Redis {what} ({type(exc).__name__}: {exc}); "
            "check its URL (host, port, password, database) and that it is running"
        )

    async def aclose(self) -> None:
        """Wait for slow-downs still being written, then close this loop's connections (and
        the pool ``from_url`` opened)."""
        loop = asyncio.get_running_loop()
        penalties = [task for task in self._penalties if task.get_loop() is loop]
        if penalties:
            await asyncio.wait(penalties)
        link, self._link = self._link, None
        if link is not None and link.loop is loop and link.keeper is not None:
            await link.keeper.aclose()

    # ----------------------------------------------------------------------------------------
    # The RateLimiter protocol

    async def acquire(self, tier: Tier | str) -> None:
        """Wait for the next slot of ``tier`` in the shared budget and take it."""
        tier = self._tier(tier)
        if not self._reached:
            await self.check()
        if self._penalties:
            # This process's own 429s must be in Redis before it asks for the next slot.
            # (asyncio.wait, unlike gather, leaves them running if this acquire is cancelled.)
            await asyncio.wait(list(self._penalties))
        link = self._link
        if link is None or link.loop is not asyncio.get_running_loop():
            link = await self._current_link()
        loop = asyncio.get_running_loop()
        async with link.locks[tier]:
            while self._use_redis():
                sent = loop.time()
                try:
                    granted, wait = await self._book(link, tier, self._rtt[tier])
                except _UNAVAILABLE as exc:
                    self._lost(exc)
                    break
                self._answered()
                rtt = self._rtt[tier] = loop.time() - sent
                if granted:
                    if wait > 0:
                        await self._sleep(wait)
                    return
                # Ask again one round trip early, so that the question reaches Redis just
                # inside the lookahead: a Redis far away must not make every slot late.
                await self._sleep(max(wait - rtt - _LOOKAHEAD / 2, 0.001))
        delay = self._fallback_from.get(tier, -math.inf) - loop.time()
        if delay > 0:
            await self._sleep(delay)
        await self._fallback.acquire(tier)
        self._fallback_granted[tier] = loop.time()

    def on_rate_limited(self, tier: Tier | str, *, retry_after: float | None = None) -> None:
        """A request got a 429: slow every process down (written to Redis in the background)."""
        tier = self._tier(tier)
        self._fallback.on_rate_limited(tier, retry_after=retry_after)
        if self._use_redis():
            task = asyncio.get_running_loop().create_task(self._penalty(tier, retry_after))
            self._penalties.add(task)
            task.add_done_callback(self._penalties.discard)

    def on_success(self, tier: Tier | str) -> None:
        """A request was answered without a 429.

        The shared rate's recovery is credited by the next grant, so this only keeps the
        fallback's own state current.
        """
        self._fallback.on_success(self._tier(tier))

    async def state(self, tier: Tier | str) -> PacingState:
        """The shared pacing state of ``tier`` as Redis holds it (times on Redis's clock), as
        the script reads it: values it would repair are shown repaired."""
        return await self._read_state(self._tier(tier))

    async def _read_state(self, tier: Tier, *, now: float | None = None) -> PacingState:
        link = await self._current_link()
        async with asyncio.timeout(self._connect_timeout + self._timeout):
            lane = await self._connected(link, tier)
            reply = await self._script(
                keys=self._keys[tier], args=self._args("state", tier, now=now), client=lane
            )
        return _shared_state(self._limits, tier, reply)

    # ----------------------------------------------------------------------------------------
    # Inside

    @staticmethod
    def _tier(tier: Tier | str) -> Tier:
        try:
            return Tier(tier)
        except ValueError:
            raise ValueError(f"tier must be one of {', '.join(Tier)}, got {tier!r}") from None

    async def _current_link(self) -> _Link:
        link = self._link
        if link is not None and link.loop is asyncio.get_running_loop():
            return link
        # First use, or a new event loop: the old loop's connections are no use here.
        if self._factory is not None and self._client_used:
            link = _Link(self._factory(), owned=True)
        else:
            link = _Link(self._client, owned=self._factory is not None)
        self._client_used = True
        keeper = _keeper(link)
        await keeper.__anext__()
        link.keeper = keeper
        self._link = link
        return link

    async def _connected(self, link: _Link, tier: Tier) -> redis.asyncio.Redis:
        """``tier``'s client on ``link`` with its connection open (opened under
        ``connect_timeout`` if it was not)."""
        lane = link.lanes[tier]
        connection = lane.connection
        if connection is None or not connection.is_connected:
            async with link.connecting[tier], asyncio.timeout(self._connect_timeout):
                await lane.initialize()
                assert lane.connection is not None
                await lane.connection.connect()  # type: ignore[no-untyped-call]
        return lane

    def _args(
        self,
        operation: str,
        tier: Tier,
        *,
        retry_after: float | None = None,
        now: float | None = None,
        earliest: float | None = None,
        lookahead: float = _LOOKAHEAD,
    ) -> list[str]:
        limits = self._limits
        return [
            operation,
            repr(limits.per_second(tier)),
            str(limits.burst(tier)),
            repr(limits.slowdown_factor),
            repr(limits.min_rate_fraction),
            repr(limits.recovery_per_second),
            repr(limits.slowdown_cooldown),
            "" if retry_after is None or not math.isfinite(retry_after) else repr(retry_after),
            repr(lookahead),
            "" if now is None else repr(now),
            "" if earliest is None or earliest <= 0 else repr(earliest),
        ]

    async def _book(self, link: _Link, tier: Tier, rtt: float) -> tuple[bool, float]:
        """One acquire by the script: (granted, seconds from now to the slot). ``rtt``: the
        last round trip to Redis."""
        lane = link.lanes[tier]
        connection = lane.connection
        if connection is None or not connection.is_connected:
            lane = await self._connected(link, tier)
        args = self._acquire_args[tier]
        earliest = None
        after_fallback = self._fallback_granted.get(tier) if self._fallback_granted else None
        if after_fallback is not None:
            # Back from the fallback: the first shared slot keeps a full interval from the
            # last fallback grant, whatever (possibly stale) schedule Redis holds.
            earliest = after_fallback + 1 / self._limits.per_second(tier)
            earliest -= asyncio.get_running_loop().time()
        if rtt > _LOOKAHEAD / 2 or (earliest is not None and earliest > 0):
            # A Redis far away: a slot is booked a round trip ahead, or a process asking
            # right after its last grant would always find the next one just out of reach
            # and get it late.
            lookahead = _LOOKAHEAD + min(rtt, self._timeout)
            args = self._args("acquire", tier, earliest=earliest, lookahead=lookahead)
        async with asyncio.timeout(self._timeout):
            reply = await self._script(keys=self._keys[tier], args=args, client=lane)
        if reply[3]:
            self._repaired(tier, reply[3])
        if reply[0] in (b"1", "1"):
            if after_fallback is not None:
                del self._fallback_granted[tier]
            return True, float(reply[1])
        return False, float(reply[1])

    async def _run(
        self,
        operation: str,
        tier: Tier,
        *,
        retry_after: float | None = None,
        now: float | None = None,
    ) -> tuple[bool, float]:
        """One run of the script with explicit arguments: (granted, seconds from now to the
        slot). Bounded by ``connect_timeout`` plus ``timeout``: it may open a connection."""
        args = self._args(operation, tier, retry_after=retry_after, now=now)
        link = await self._current_link()
        async with asyncio.timeout(self._connect_timeout + self._timeout):
            lane = await self._connected(link, tier)
            reply = await self._script(keys=self._keys[tier], args=args, client=lane)
        if reply[3]:
            self._repaired(tier, reply[3])
        return reply[0] in (b"1", "1"), float(reply[1])

    def _repaired(self, tier: Tier, fields: bytes | str) -> None:
        names = fields.decode() if isinstance(fields, bytes) else fields
        # Once at WARNING: a process that keeps damaging the key must not flood the log.
        level = logging.DEBUG if self._repairs_seen else logging.WARNING
        self._repairs_seen = True
        logger.log(
            level,
            "Redis rate limiter %s: the %s state in Redis was damaged (%s); replaced with safe "
            "values (a bad rate or schedule counts as the budget just spent at the lowest rate)",
            self._key_prefix,
            tier,
            "a key of another type" if names == "type" else f"bad {names}",
        )

    async def _penalty(self, tier: Tier, retry_after: float | None) -> None:
        try:
            await self._run("penalty", tier, retry_after=retry_after)
        except _UNAVAILABLE as exc:
            self._lost(exc)
        else:
            self._answered()

    def _use_redis(self) -> bool:
        if not self._degraded:
            return True
        # A probe: the next call goes to Redis and either brings it back or pushes this on.
        return asyncio.get_running_loop().time() >= self._probe_at

    def _lost(self, exc: BaseException) -> None:
        now = asyncio.get_running_loop().time()
        self._probe_at = now + self._probe_interval
        if not self._degraded:
            self._degraded = True
            # The last shared grant may still be due (booked up to _LOOKAHEAD ahead): the
            # fallback's first slot keeps a full fallback interval from it. On top, a random
            # part of one interval: processes that lose Redis together would otherwise each
            # send at once, a burst of one request per process.
            fallback = self._fallback.limits
            self._fallback_from = {
                tier: now + _LOOKAHEAD + (1 + random.random()) / fallback.per_second(tier)  # noqa: S311
                for tier in Tier
            }
            logger.warning(
                "Redis rate limiter %s: no answer from Redis (%s: %s); pacing this process "
                "alone at %g POST/s until Redis answers again",
                self._key_prefix,
                type(exc).__name__,
                exc,
                self._fallback.limits.post_per_second,
            )

    def _answered(self) -> None:
        if self._degraded:
            self._degraded = False
            logger.warning(
                "Redis rate limiter %s: Redis answers again; sharing the budget again",
                self._key_prefix,
            )
