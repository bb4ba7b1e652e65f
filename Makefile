# Entry points. `make demo` and `make test` work on a fresh Debian 12 machine:
# each installs what is missing, builds, then runs.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)

FUZZ_SECONDS ?= 60

.PHONY: all deps build test thread-safety test-sanitize fuzz unit integration demo examples bench bench-tools bench-endpoint clean format

all: build

deps:
	@scripts/install-deps.sh

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The suite, then clang's thread-safety analysis over the same sources
# (GUARDED_BY / REQUIRES, core/thread_annotations.h).
test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)
	scripts/check-thread-safety.py $(BUILD_DIR) $(JOBS)

thread-safety: build
	scripts/check-thread-safety.py $(BUILD_DIR) $(JOBS)

# The test suite again, built with clang, ASan and UBSan (build-sanitize/).
test-sanitize: deps
	scripts/test-sanitize.sh

# Every libFuzzer target for FUZZ_SECONDS on its corpus (tests/fuzz/).
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

unit: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) -L unit

integration: build
	$(BUILD_DIR)/tests/vigil_integration_tests

demo: build
	@scripts/demo.sh

# Retrains the example models (needs: scripts/install-deps.sh --examples).
examples:
	@scripts/install-deps.sh --examples
	/usr/bin/python3 examples/train.py

# Side-by-side HTTP benchmark against peers (needs: scripts/install-deps.sh --bench).
bench: build
	@scripts/install-deps.sh --bench
	bench/run.sh

# gRPC vs HTTP, vigil bench vs wrk, vigil profile (bench/RESULTS.md, issue 3).
bench-tools: build
	@scripts/install-deps.sh --bench
	bench/tools.sh

# The cost of endpoints: split, shadow, prediction log (bench/RESULTS.md, issue 4).
bench-endpoint: build
	bench/endpoint.sh

format:
	clang-format -i $$(git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc' 'tests/*.h' 'bench/*.cc')

clean:
	rm -rf $(BUILD_DIR) build-sanitize
