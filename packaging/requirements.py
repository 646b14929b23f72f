"""Prints the requirements of one of pyproject.toml's extras, one a line.

    python packaging/requirements.py release

Lets ``make wheels`` install the pinned release tools without building godottpd itself
(``pip install .[release]`` would compile the package first).
"""

from __future__ import annotations

import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: requirements.py EXTRA")
    extra = sys.argv[1]
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        sys.exit("requirements.py needs Python 3.11 or newer (tomllib)")
    with PYPROJECT.open("rb") as file:
        extras = tomllib.load(file)["project"]["optional-dependencies"]
    if extra not in extras:
        sys.exit(f"pyproject.toml has no extra {extra!r} (it has {sorted(extras)})")
    print("\n".join(extras[extra]))


if __name__ == "__main__":
    main()
