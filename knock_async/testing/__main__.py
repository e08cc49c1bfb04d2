"""``python -m knock_async.testing --port 8080``: serve the emulator until Ctrl-C.

The same front door as ``knock-async emulator`` (``_frontdoor``), without the ``cli`` extra.
"""

from __future__ import annotations

import sys

from ._frontdoor import main

if __name__ == "__main__":
    sys.exit(main())
