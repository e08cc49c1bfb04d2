"""Benchmarks: ``knock_async`` side by side with raw aiohttp and Knock's official SDK.

Run ``python -m benchmarks`` (``--quick`` for a run under a minute, ``--list`` for the
benchmarks, names to pick some). Every benchmark measures all its peers in the same run on this
machine and prints a Markdown table of ratios; see ``benchmarks/README.md``. Nothing here is a
test: timings stay out of the test suite.
"""
