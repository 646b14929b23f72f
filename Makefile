# The project's everyday commands. `make test` is the README's test command.
PYTHON ?= python3

.PHONY: install test test-rust test-python soak fuzz lint lint-workflows format bench bench-load wheels

install:
	$(PYTHON) -m pip install -e ".[test]"

# Installs the test tools and the package (built in release mode), then runs every test.
test: install test-rust test-python

test-rust:
	cargo test --release

# The suite runs twice: handlers on the server's handler threads (the default), then inline
# on the I/O thread (handler_threads=0).
test-python:
	$(PYTHON) -m pytest
	GODOTTPD_TEST_HANDLER_THREADS=0 $(PYTHON) -m pytest -q

# Long load, soak and leak runs (bounded; GODOTTPD_SOAK_* variables make them longer).
soak:
	$(PYTHON) -m pytest -m slow

# The cargo-fuzz targets, FUZZ_SECONDS each (60 by default); see fuzz/README.md.
fuzz:
	bash fuzz/run-ci.sh

lint:
	cargo fmt --check
	cargo clippy --all-targets --release -- -D warnings
	$(PYTHON) -m ruff check python tests examples benches packaging
	$(PYTHON) -m ruff format --check python tests examples benches packaging
	$(PYTHON) -m mypy --strict python/godottpd examples packaging
	$(PYTHON) -m mypy.stubtest godottpd._godottpd --allowlist .mypy-stubtest-allowlist

format:
	cargo fmt
	$(PYTHON) -m ruff format python tests examples benches packaging

bench:
	cargo bench --bench core

# The load benchmark against Python servers and nginx (installs wrk, nginx and the peers).
bench-load:
	cargo build --release
	cp target/release/libgodottpd.so python/godottpd/_godottpd.abi3.so
	$(PYTHON) benches/load/run.py

# The manylinux2014 x86_64 abi3 wheel (zig) and the sdist in dist/, checked (auditwheel,
# abi3audit, twine, actionlint) and smoke-tested in fresh venvs of CPython 3.9 and 3.13;
# see packaging/wheels.sh. Installs its own pinned tools (the `release` extra) in a venv.
wheels:
	PYTHON=$(PYTHON) bash packaging/wheels.sh

# actionlint (with shellcheck) on the GitHub workflows, from the `release` extra's pins.
lint-workflows:
	$(PYTHON) -m venv target/wheels/lint
	$(PYTHON) packaging/requirements.py release | grep -E '^(actionlint|shellcheck)' > target/wheels/lint/requirements.txt
	target/wheels/lint/bin/python -m pip install -q -r target/wheels/lint/requirements.txt
	target/wheels/lint/bin/actionlint -shellcheck target/wheels/lint/bin/shellcheck .github/workflows/*.yml
