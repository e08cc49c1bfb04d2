"""3. Many pollers: 10,000 operations polled concurrently through one client. LATER.

Runs against the embedded emulator (``knock_async.testing.KnockEmulator``), which was being
built when the other benchmarks were written; this one is not written yet.
The plan, for whoever fills this in:

* one ``KnockEmulator`` on loopback with a ``ManualClock`` or a fast real clock, rate limits
  off, 10,000 operations started up front (``emu`` seeding or 10,000 bulk POSTs);
* one ``KnockClient`` (pacing on at the emulator's limits, so the GET tier is exercised),
  ``asyncio.gather`` over ``knock.bulk_operations.poll(op)`` for every operation;
* measure the client process's CPU time per poll (``time.process_time``) and peak memory
  (``tracemalloc`` or ``resource.getrusage().ru_maxrss``), the GETs per operation, and the
  spread of the poll times (jitter must keep pollers from asking in lockstep); compare with
  a raw aiohttp loop polling every operation on the same schedule (the floor).

Until then ``run`` reports the benchmark as skipped and it costs nothing in the default run.
"""

from __future__ import annotations

from ._common import Report, Settings

NAME = "many_pollers"
TITLE = "3. Many pollers (10,000 operations through one client)"
SKIPPED = (
    "LATER in the benchmarks issue: runs against the embedded emulator "
    "(knock_async.testing.KnockEmulator) and is not written yet; the plan is in "
    "benchmarks/many_pollers.py"
)


def run(settings: Settings) -> Report:
    return Report(name=NAME, title=TITLE, skipped=SKIPPED)
