"""Checks a built Linux wheel: its manylinux/musllinux tag holds and it is a true abi3 wheel.

    python packaging/check_wheel.py dist/godottpd-*.whl

* ``auditwheel show`` must find the wheel consistent with the tag in its name,
  ``manylinux_2_17_<arch>`` (the policy of manylinux2014) or ``musllinux_1_2_<arch>``; for
  manylinux, no symbol the wheel references may need a glibc newer than 2.17.
  ``auditwheel show`` itself exits 0 whatever it finds, so its report is read here.
* ``abi3audit --strict`` must find no symbol outside the stable ABI of CPython 3.9.
* The wheel's own tags must say ``cp39-abi3`` and ``manylinux_2_17`` or ``musllinux_1_2``.

Exits non-zero with the reason on the first failure. Run with the tools environment of
``make wheels`` (``auditwheel`` and ``abi3audit`` on ``PATH``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

GLIBC_MAX = (2, 17)
ABI3_BASELINE = "3.9"


def fail(message: str) -> NoReturn:
    print(f"check_wheel: FAIL: {message}", flush=True)
    sys.exit(1)


def run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    print(f"$ {' '.join(command)}\n{output.rstrip()}", flush=True)
    if result.returncode != 0:
        fail(f"{command[0]} exited with {result.returncode}")
    return output


def check(wheel: Path) -> None:
    name = wheel.name
    if "-cp39-abi3-" not in name:
        fail(f"{name} is not tagged cp39-abi3")
    match = re.search(r"(manylinux_2_17|musllinux_1_2)_([a-z0-9_]+)\.whl$", name)
    if match is None:
        fail(f"{name} is tagged neither manylinux_2_17 (manylinux2014) nor musllinux_1_2")
    policy, arch = match.group(1), match.group(2)

    report = " ".join(run("auditwheel", "show", str(wheel)).split())
    wanted = f'is consistent with the following platform tag: "{policy}_{arch}"'
    if wanted not in report:
        fail(f"auditwheel does not find the wheel consistent with {policy}_{arch}")
    if policy == "manylinux_2_17":
        versions = {
            (int(major), int(minor)) for major, minor in re.findall(r"GLIBC_(\d+)\.(\d+)", report)
        }
        if not versions:
            fail("auditwheel listed no glibc symbol versions (unexpected report format)")
        newest = max(versions)
        if newest > GLIBC_MAX:
            fail(f"a symbol needs GLIBC_{newest[0]}.{newest[1]}, newer than 2.17")
        print(
            f"check_wheel: auditwheel: {policy}_{arch}, newest glibc symbol "
            f"GLIBC_{newest[0]}.{newest[1]}",
            flush=True,
        )
    else:
        print(f"check_wheel: auditwheel: {policy}_{arch}", flush=True)

    report = run("abi3audit", "--strict", "--report", str(wheel))
    try:
        specs = json.loads(report[report.index("{") :])["specs"]
        extensions = [entry for spec in specs.values() for entry in spec["wheel"]]
    except (ValueError, KeyError, TypeError) as error:
        fail(f"abi3audit's report does not read as expected: {error!r}")
    if not extensions:
        fail("abi3audit found no extension module in the wheel")
    for extension in extensions:
        result = extension["result"]
        if not result["is_abi3"] or not result["is_abi3_baseline_compatible"]:
            fail(f"{extension['name']} is not abi3 for Python {result['baseline']}")
        if result["non_abi3_symbols"] or result["future_abi3_objects"]:
            fail(f"{extension['name']} uses symbols outside the stable ABI: {result}")
        print(
            f"check_wheel: abi3audit: {extension['name']} is abi3, baseline "
            f"{result['baseline']}, needs {result['computed']}, 0 violations",
            flush=True,
        )
        if result["baseline"] != ABI3_BASELINE:
            fail(f"baseline {result['baseline']}, expected {ABI3_BASELINE}")


def main() -> None:
    wheels = [Path(arg) for arg in sys.argv[1:]]
    if not wheels:
        fail("no wheel given")
    for wheel in wheels:
        if not wheel.is_file():
            fail(f"{wheel} does not exist")
        check(wheel)
    print(f"check_wheel: {len(wheels)} wheel(s) passed", flush=True)


if __name__ == "__main__":
    main()
