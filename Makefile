# The commands the README promises: `make demo`, `make test`, `make check`, `make bench` and `make dist`. Each
# installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The helper with its runtime dependencies only, as a user installs it: the demo, the stand-ins, the benchmark.
BENCH_VENV ?= .venv-bench

.PHONY: demo demo-tools stand-ins test check lint bench hostile dist e2e-tools mutants

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

# The demo installs the helper as a user does (runtime dependencies only: the benchmark's venv) while
# it builds only the tools it runs (build_providers.sh --demo), the two at once; scripts/demo_build.py
# shows what is building and for how long, a line at least every 15 s.
demo:
	@$(PYTHON) scripts/demo_build.py $(BENCH_VENV)/.installed "$(MAKE)"
	@$(BENCH_VENV)/bin/python scripts/demo.py

# The demo's issuer and Authress stand-in, running until Ctrl-C, with the export lines to try `setup`
# and `doctor` against them by hand (docs/try-it.md).
stand-ins: $(BENCH_VENV)/.installed
	@$(BENCH_VENV)/bin/python scripts/stand_ins.py

demo-tools:
	bash tests/e2e/build_providers.sh --demo

lint: $(BIN)/.installed
	$(BIN)/ruff check helper tests scripts bench
	$(BIN)/ruff format --check helper tests scripts bench
	$(BIN)/mypy

# Terraform providers (from the vendored upstream sources and the Go module proxy) and the Terraform and
# OpenTofu CLIs for tests/e2e, built once and cached outside the repo; what cannot be built is recorded,
# and its tests skip with that reason. Then the GitLab CI engine the pipeline tests run (gitlab-ci-local and
# Node 22, pinned, from npm into the same cache; rsync).
e2e-tools:
	bash tests/e2e/build_providers.sh
	bash tests/e2e/install_gitlab_ci_local.sh

# Three workers (most tests wait on servers, Terraform or gitlab-ci-local, not on the 2 cores), each test file
# on one: its servers and Terraform working directories stay together.
test: lint e2e-tools
	$(BIN)/python -m pytest -n 3 --dist loadfile --no-loadscope-reorder

# The fast loop to run after every change: lint, types and every test that is neither slow (stress loops,
# real deadlines), nor builds the distributions, nor runs Terraform or a CI engine (docs/testing.md).
check: lint
	$(BIN)/python -m pytest -q -n 2 -m "not slow and not dist and not e2e" $(CHECK_ARGS)

# The sdist and the wheel (built from the sdist), as the release pipeline publishes them; tests/docs/test_dist.py
# builds with this target too, into a directory of its own.
DIST ?= dist

dist: $(BIN)/.installed
	rm -rf $(DIST)
	$(BIN)/python -m build --outdir $(DIST) .

# The benchmark runs in its own venv with the runtime dependencies only, as a user installs the helper:
# test tools installed beside httpx or jsonschema change what they import at start-up.
$(BENCH_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -e .
	touch $@

# Then what the CI/CD component costs a job, in gitlab-ci-local (bench/job.py; the test venv has its fixtures).
bench: $(BENCH_VENV)/.installed $(BIN)/.installed
	$(BENCH_VENV)/bin/python bench/run.py $(BENCH_ARGS)
	bash tests/e2e/install_gitlab_ci_local.sh
	$(BIN)/python bench/job.py $(BENCH_JOB_ARGS)

# What a hostile server (compression bombs, trickled headers or body) makes one run spend: peak RSS and time.
hostile: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/hostile.py $(HOSTILE_ARGS)

# Plausible one-line bugs in the security logic, each against the non-e2e suite (docs/testing.md); it
# changes files in place and restores them, so run it in a clone you are not editing.
mutants: $(BIN)/.installed
	$(BIN)/python scripts/mutants.py $(MUTANTS_ARGS)
