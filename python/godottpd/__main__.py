"""``python -m godottpd``: see :mod:`godottpd.cli`."""

import sys

from godottpd.cli import main

if __name__ == "__main__":
    sys.exit(main())
