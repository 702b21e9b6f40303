# tombo -- the two commands of the README:
#   make run    install what is missing, build, start the broker on 127.0.0.1:1883 (conf/tombo.conf)
#   make test   install what is missing, build with sanitizers, run every test
# Builds live under build/: release (build/release), ASan+UBSan (build/asan), TSan (build/tsan),
# libFuzzer (build/fuzz).

JOBS ?= $(shell nproc)
PY := /usr/bin/python3
FUZZ_SECONDS ?= 20

.PHONY: all run test deps deps-test release asan tsan fuzz unit pytest tsan-test fuzz-test clean \
        package package-build install-test

all: release

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

release: deps
	@cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build/release -j $(JOBS)

run: release
	@mkdir -p data
	./build/release/src/broker/tombo -c conf/tombo.conf

asan:
	@cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DTOMBO_SANITIZE=ON >/dev/null
	@cmake --build build/asan -j $(JOBS)

tsan:
	@cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOMBO_TSAN=ON >/dev/null
	@cmake --build build/tsan -j $(JOBS)

fuzz:
	@CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOMBO_FUZZ=ON >/dev/null
	@cmake --build build/fuzz -j $(JOBS)

unit: asan
	@cd build/asan && ctest --output-on-failure -j $(JOBS)

fuzz-test: fuzz
	@scripts/fuzz.sh build/fuzz $(FUZZ_SECONDS)

# One pytest run per directory: each has its own conftest.py, imported by name by its tests.
PYTEST_DIRS := tests/broker tests/client tests/tools tests/bench
pytest: asan
	@set -e; for d in $(PYTEST_DIRS); do echo "== pytest $$d"; \
	  TOMBO_BUILD=$(CURDIR)/build/asan $(PY) -m pytest -q -p no:cacheprovider $$d; done

# The multi-threaded paths under ThreadSanitizer: the unit tests of the cross-thread pieces (the
# big-reader lock, the inboxes, slab blocks freed on another thread), the broker's many-client tests
# and libtombo's publish-from-several-threads tests, plain and over TLS.
# Under TSan, the broker tests whose paths cross threads: the ones marked tsan in every file, and the
# files that are about threads (workers handing messages over, reload, limits, bridges, TLS, the
# HTTP endpoint's thread, WebSockets, the cluster: nats.c's threads posting to the workers). The whole suite runs under ASan; this keeps make test short.
TSAN_BROKER := -m tsan tests/broker
TSAN_BROKER_FILES := test_concurrency test_backpressure test_reload test_limits test_bridge test_tls test_http \
                     test_websockets test_sys test_session test_plugin test_cluster
tsan-test: tsan
	cd build/tsan && ctest --output-on-failure -R 'test_base_brlock|test_base_mem|test_base_mpsc|test_broker_inbox|test_broker_slab'
	TOMBO_BUILD=$(CURDIR)/build/tsan TOMBO_TSAN=1 $(PY) -m pytest -q -p no:cacheprovider $(TSAN_BROKER)
	TOMBO_BUILD=$(CURDIR)/build/tsan TOMBO_TSAN=1 $(PY) -m pytest -q -p no:cacheprovider \
	  $(patsubst %,tests/broker/%.py,$(TSAN_BROKER_FILES))
	TOMBO_BUILD=$(CURDIR)/build/tsan TOMBO_TSAN=1 $(PY) -m pytest -q -p no:cacheprovider tests/client/test_library.py tests/client/test_alias.py \
	  tests/client/test_tls.py

test: deps-test
	@scripts/check_layers.sh
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory fuzz-test
	@$(MAKE) --no-print-directory pytest
	@$(MAKE) --no-print-directory tsan-test
	@$(MAKE) --no-print-directory install-test

# The Debian package (README "Install"): a release build configured for /usr (so the configuration
# goes to /etc/tombo), then cpack: build/package/tombo_VERSION_ARCH.deb. The Dockerfile runs this.
package-build: deps
	@cmake -S . -B build/package -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
	@cmake --build build/package -j $(JOBS)

package: package-build
	@cd build/package && cpack -G DEB

# tests/install builds the package from build/package itself (cpack into a temporary directory),
# unpacks it into a temporary root and runs what it installed; it needs a build of its own, not
# build/asan, so it is not in PYTEST_DIRS.
install-test: package-build
	@TOMBO_PACKAGE_BUILD=$(CURDIR)/build/package $(PY) -m pytest -q -p no:cacheprovider tests/install

clean:
	rm -rf build
