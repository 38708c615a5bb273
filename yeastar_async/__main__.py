"""``python -m yeastar_async``: the ``yeastar-async`` command line (:mod:`yeastar_async.cli`)."""

import sys

from yeastar_async.cli import main

if __name__ == "__main__":
    sys.exit(main())
