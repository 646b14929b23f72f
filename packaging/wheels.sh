#!/usr/bin/env bash
# `make wheels`: builds the manylinux2014 x86_64 abi3 wheel (with zig) and the sdist into
# dist/, checks them, installs each into fresh virtual environments and smoke-tests it.
#
#   1. a tools venv with pyproject.toml's `release` extra (maturin, ziglang, auditwheel,
#      abi3audit, twine, trove-classifiers, actionlint, shellcheck), pinned there;
#   2. actionlint on .github/workflows/ (shellcheck checks their scripts), shellcheck here;
#   3. maturin build --release --zig --compatibility manylinux2014, maturin sdist;
#   4. packaging/check_wheel.py (auditwheel show: manylinux_2_17, no symbol newer than
#      glibc 2.17; abi3audit --strict), twine check --strict, the classifiers are known;
#   5. the wheel into fresh venvs of the oldest and newest CPython found (3.9 and 3.13+),
#      packaging/smoke.py in each;
#   6. the sdist into a fresh venv (pip compiles the Rust core with cargo), smoke.py there.
#
# Any failure stops the script with a non-zero exit. Environment:
#   PYTHON           interpreter for the tools venv (3.11 or newer; default python3)
#   PYTHON_OLDEST    CPython 3.9 to test the wheel and build the sdist with (default: pyenv's)
#   PYTHON_NEWEST    the newest CPython (default: pyenv's newest 3.13 or later)
#   WHEELS_WORK      where the venvs go (default target/wheels; recreated each run, but the
#                    tools venv is kept while pyproject.toml's pins are unchanged)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

PYTHON="${PYTHON:-python3}"
WORK="${WHEELS_WORK:-$ROOT/target/wheels}"
DIST="$ROOT/dist"
export PIP_DISABLE_PIP_VERSION_CHECK=1
started=$SECONDS

step() { printf '\n==> %s (%ds)\n' "$*" "$((SECONDS - started))"; }

# The newest CPython X.Y.Z under pyenv whose minor version is within [low, high].
pyenv_python() {
    local low="$1" high="$2" root candidate version best="" best_key=""
    root="${PYENV_ROOT:-$HOME/.pyenv}"
    for candidate in "$root"/versions/3.*/bin/python3; do
        [ -x "$candidate" ] || continue
        version="$(basename "$(dirname "$(dirname "$candidate")")")"
        [[ "$version" =~ ^3\.([0-9]+)\.([0-9]+)$ ]] || continue
        local minor="${BASH_REMATCH[1]}" patch="${BASH_REMATCH[2]}"
        ((minor >= low && minor <= high)) || continue
        local key
        key="$(printf '%03d%03d' "$minor" "$patch")"
        if [[ -z "$best_key" || "$key" > "$best_key" ]]; then
            best="$candidate" best_key="$key"
        fi
    done
    if [ -z "$best" ]; then
        for version in $(seq "$high" -1 "$low"); do
            if command -v "python3.$version" >/dev/null 2>&1 \
                && "python3.$version" -c '' >/dev/null 2>&1; then
                best="$(command -v "python3.$version")"
                break
            fi
        done
    fi
    [ -n "$best" ] || return 1
    echo "$best"
}

OLDEST="${PYTHON_OLDEST:-$(pyenv_python 9 9 || true)}"
NEWEST="${PYTHON_NEWEST:-$(pyenv_python 13 99 || true)}"
if [ -z "$OLDEST" ] || [ -z "$NEWEST" ]; then
    echo "wheels: need CPython 3.9 and 3.13+ (found '${OLDEST}' and '${NEWEST}');" \
        "set PYTHON_OLDEST / PYTHON_NEWEST" >&2
    exit 1
fi

step "tools venv ($WORK/tools) with the release extra"
mkdir -p "$WORK"
TOOLS="$WORK/tools"
"$PYTHON" packaging/requirements.py release >"$WORK/release-tools.txt"
if ! cmp -s "$WORK/release-tools.txt" "$TOOLS/release-tools.txt" 2>/dev/null; then
    rm -rf "$TOOLS"
    "$PYTHON" -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install -q -r "$WORK/release-tools.txt"
    cp "$WORK/release-tools.txt" "$TOOLS/release-tools.txt"
fi
# maturin finds zig on PATH: the ziglang package's binary, through a one-line wrapper.
mkdir -p "$TOOLS/zig-bin"
printf '#!/bin/sh\nexec "%s" -m ziglang "$@"\n' "$TOOLS/bin/python" >"$TOOLS/zig-bin/zig"
chmod +x "$TOOLS/zig-bin/zig"
export PATH="$TOOLS/zig-bin:$TOOLS/bin:$PATH"
echo "maturin $(maturin --version | cut -d' ' -f2), zig $(zig version)," \
    "auditwheel $(auditwheel --version | head -n 1 | cut -d' ' -f2), abi3audit $(abi3audit --version | awk '{print $NF}')"

step "actionlint .github/workflows (with shellcheck), shellcheck packaging/wheels.sh"
actionlint -version | head -n 1
actionlint -shellcheck "$(command -v shellcheck)" .github/workflows/*.yml
shellcheck packaging/wheels.sh
echo "workflows and scripts: no findings"

step "maturin build --release --zig --compatibility manylinux2014 (x86_64)"
rm -f "$DIST"/godottpd-*.whl "$DIST"/godottpd-*.tar.gz
maturin build --release --zig --compatibility manylinux2014 \
    --target x86_64-unknown-linux-gnu --out "$DIST"
step "maturin sdist"
maturin sdist --out "$DIST"
WHEEL="$(ls "$DIST"/godottpd-*-cp39-abi3-*.whl)"
SDIST="$(ls "$DIST"/godottpd-*.tar.gz)"
ls -l "$DIST"

step "check: auditwheel, abi3audit, twine, classifiers, sdist contents"
python packaging/check_wheel.py "$WHEEL"
twine check --strict "$WHEEL" "$SDIST"
python - "$WHEEL" <<'EOF'
import sys
import zipfile

from trove_classifiers import classifiers as known

with zipfile.ZipFile(sys.argv[1]) as wheel:
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = wheel.read(name).decode()
    names = wheel.namelist()
lines = metadata.splitlines()
given = [line.split(": ", 1)[1] for line in lines if line.startswith("Classifier: ")]
unknown = [c for c in given if c not in known]
if unknown:
    sys.exit(f"unknown classifiers: {unknown}")
for field in ("License-Expression: MIT", "License-File: LICENSE", "Project-URL: Repository"):
    if not any(line.startswith(field) for line in lines):
        sys.exit(f"METADATA lacks {field!r}")
if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
    sys.exit("the wheel does not hold LICENSE")
for wanted in ("godottpd/py.typed", "godottpd/_godottpd.pyi", "godottpd/_godottpd.abi3.so"):
    if wanted not in names:
        sys.exit(f"the wheel does not hold {wanted}")
print(f"metadata: {len(given)} classifiers, all known; licence file and URLs present")
EOF
sdist_files="$(tar -tzf "$SDIST")"
for wanted in LICENSE Cargo.lock Cargo.toml pyproject.toml README.md src/lib.rs python/godottpd/__init__.py; do
    grep -qx "godottpd-[^/]*/$wanted" <<<"$sdist_files" || {
        echo "wheels: the sdist lacks $wanted" >&2
        exit 1
    }
done
echo "sdist: $(wc -l <<<"$sdist_files") files, licence, lock file and sources present"

# Runs packaging/smoke.py with a venv's interpreter, from an empty folder outside the tree.
smoke() {
    local venv="$1" here
    here="$(mktemp -d)"
    (cd "$here" && "$venv/bin/python" "$ROOT/packaging/smoke.py")
    rm -rf "$here"
}

for interpreter in "$OLDEST" "$NEWEST"; do
    version="$("$interpreter" -c 'import platform; print(platform.python_version())')"
    step "wheel on CPython $version ($interpreter): fresh venv, install, smoke test"
    venv="$WORK/venv-wheel-$version"
    rm -rf "$venv"
    "$interpreter" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --no-index --only-binary=:all: "$WHEEL"
    smoke "$venv"
done

version="$("$OLDEST" -c 'import platform; print(platform.python_version())')"
step "sdist on CPython $version: fresh venv, pip install the .tar.gz (compiles with cargo)"
venv="$WORK/venv-sdist-$version"
rm -rf "$venv"
"$OLDEST" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
# pip unpacks the sdist in a temporary folder and cargo builds there from nothing, as on a
# user's machine; maturin comes from PyPI through the sdist's build-system requirement.
sdist_started=$SECONDS
env -u CARGO_TARGET_DIR "$venv/bin/python" -m pip install -q "$SDIST"
echo "sdist built and installed in $((SECONDS - sdist_started)) s"
smoke "$venv"

step "done: $(basename "$WHEEL") and $(basename "$SDIST") built, checked and smoke-tested"
