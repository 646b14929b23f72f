# The project's everyday commands. `make test` is the README's test command.
PYTHON ?= python3

.PHONY: system-tools install test test-rust test-python soak fuzz lint lint-workflows format bench bench-load bench-workers wheels

# The system tools the tests drive (curl, openssl s_client, headless Chromium, nginx and
# HAProxy in front): installed from Debian's packages when one is missing and apt-get can run.
SYSTEM_TOOLS := curl openssl chromium nginx haproxy
system-tools:
	@missing=""; for tool in $(SYSTEM_TOOLS); do \
		command -v $$tool >/dev/null 2>&1 || [ -x /usr/sbin/$$tool ] || missing="$$missing $$tool"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing:$$missing"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; \
		else \
			echo "missing system tools:$$missing (install them; their tests will fail)"; \
		fi; \
	fi

install:
	$(PYTHON) -m pip install -e ".[test]"

# Installs the system tools, the test tools and the package (built in release mode), then
# runs every test.
test: system-tools install test-rust test-python

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

# 1 and 2 workers against granian and socketify, and files with --threads 1 and 2 (issue 12).
bench-workers:
	cargo build --release
	cp target/release/libgodottpd.so python/godottpd/_godottpd.abi3.so
	$(PYTHON) benches/load/workers.py

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
