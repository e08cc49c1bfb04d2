"""``python -m knock_async``: the ``knock-async`` command line."""

from __future__ import annotations

import sys

from knock_async.cli import main

if __name__ == "__main__":
    sys.exit(main())
