"""5. Fan-out: one bulk update over many channels at once. LATER.

Measures the fan-out API (``knock.channels.bulk.update_many``), which was being built when the
other benchmarks were written; this one is not written yet. The plan, for whoever fills it in:
reuse ``benchmarks._peers`` (one worker process per client, CPU time of the client process)
and ``benchmarks._server.CannedServer``; each peer updates N channels concurrently (the
library through its fan-out API, raw aiohttp and ``knockapi`` through ``asyncio.gather`` with a
semaphore) and the table shows CPU per channel and, against the emulator with Knock's rate
limits on, the number of 429s and the wall time to finish (client-side pacing should turn a
429 storm into none at about 5 POST/s).

Until then ``run`` reports the benchmark as skipped and it costs nothing in the default run.
"""

from __future__ import annotations

from ._common import Report, Settings

NAME = "fan_out"
TITLE = "5. Fan-out over many channels"
SKIPPED = (
    "LATER in the benchmarks issue: measures the fan-out API (knock.channels.bulk.update_many) "
    "and is not written yet; the plan is in benchmarks/fan_out.py (it can reuse "
    "benchmarks._peers and benchmarks._server)"
)


def run(settings: Settings) -> Report:
    return Report(name=NAME, title=TITLE, skipped=SKIPPED)
