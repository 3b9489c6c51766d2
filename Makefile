# oxetcd — the entry points a newcomer types.
# `make run` starts a single-node server on 127.0.0.1:2379 (data in ./default.etcd);
# `make test` runs every check CI runs.

CARGO ?= cargo
ENDPOINT ?= http://127.0.0.1:2379

.PHONY: run test lint fmt build etcd-reference model-check explore bench cluster docs conformance clean

run:
	$(CARGO) run --release --bin oxetcd --

# Test builds need what `make etcd-reference` installs (protoc for impl/client-tests).
build: etcd-reference
	$(CARGO) build --workspace --all-targets

# Everything CI checks: formatting, clippy with warnings as errors, every test.
# Incremental compilation only slows a build from scratch, which is what CI does.
test: export CARGO_INCREMENTAL ?= 0
test: etcd-reference lint
	$(CARGO) test --workspace --all-targets

lint: etcd-reference
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# The reference etcd 3.4.23 (Debian's etcd-server and etcd-client), used by the
# conformance and linearizability tests, the Python client libraries and protoc (for the
# etcd-client crate's build script). Installed only when missing.
etcd-reference:
	@sh conformance/ensure-etcd.sh

model-check:
	$(CARGO) run --release --bin oxetcd-model -- check --servers 3 --network lossy --crashes 1 --max-states 4000000

explore:
	$(CARGO) run --release --bin oxetcd-model -- explore

bench:
	sh conformance/ensure-etcd.sh
	-$(CARGO) build --release --bin oxetcd
	$(CARGO) run --release --bin oxetcd-bench -- compare --oxetcd $${CARGO_TARGET_DIR:-target}/release/oxetcd $(BENCH_FLAGS)

# A local 3-member cluster (infra1..3, clients on 2379/22379/32379, data in ./cluster).
cluster:
	$(CARGO) build --release --bin oxetcd
	sh scripts/cluster.sh

docs:
	$(CARGO) doc --workspace --no-deps

# Replays every transcript in conformance/transcripts against ENDPOINT and/or servers
# started from LAUNCH=bin for transcripts needing server flags (ONLY=glob,
# REPORT=file.md|file.html optional); exit status 0 only if no transcript fails.
conformance: etcd-reference
	$(CARGO) run --release -p oxetcd-conformance --bin etcd-conformance -- replay $(if $(ENDPOINT),--endpoint $(ENDPOINT)) $(if $(LAUNCH),--launch $(LAUNCH)) $(if $(ONLY),--only '$(ONLY)') $(if $(REPORT),--report $(REPORT))

# Seeded Jepsen runs against a launched 3-member etcd, one after another (RUNS per nemesis,
# DURATION s each; about 35 s a run), with a per-run table in OUT/summary.{csv,md}.
# LAUNCH=oxetcd runs them against a 3-member oxetcd (release build) instead.
.PHONY: jepsen-sweep
jepsen-sweep: etcd-reference
	$(CARGO) build -p oxetcd-conformance --bin etcd-conformance
	$(if $(filter oxetcd,$(LAUNCH)),$(CARGO) build --release --bin oxetcd)
	JEPSEN_BIN=$${CARGO_TARGET_DIR:-target}/debug/etcd-conformance $(if $(filter oxetcd,$(LAUNCH)),LAUNCH=$${CARGO_TARGET_DIR:-target}/release/oxetcd) sh conformance/scripts/jepsen-sweep.sh

clean:
	$(CARGO) clean
