#!/usr/bin/env bash
# Installs what is missing and runs every test: the Swift suites (units, libvirt test driver,
# ZeroMQ over real sockets, the worker end to end, the web console), the Python conformance
# client, and the web console in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d /opt/swift/usr/bin ]] && export PATH="/opt/swift/usr/bin:$PATH"
scripts/install-deps.sh --test

# The real-hypervisor tier: QEMU under libvirtd. In CI it must run; elsewhere it is skipped,
# with the reason printed, only where it cannot run (not root, no QEMU).
if [[ "${CI:-}" == "true" ]]; then export ECP_REQUIRE_HYPERVISOR=1; fi
if ! scripts/libvirtd-up.sh; then
  if [[ "${ECP_REQUIRE_HYPERVISOR:-}" == "1" ]]; then
    echo "test: qemu:///system is required here and could not be brought up" >&2
    exit 1
  fi
  echo "test: qemu:///system is not available; the hypervisor tier will be skipped" >&2
fi
# The tier's guest with an OS, made from Debian's packages and cached (the tests locate it with
# the same script; making it here first says plainly when it cannot be made).
if ! scripts/test-guest.sh >/dev/null && [[ "${ECP_REQUIRE_HYPERVISOR:-}" == "1" ]]; then
  echo "test: the hypervisor tier's test guest could not be made" >&2
  exit 1
fi

start=$(date +%s)
swift build --build-tests
echo "test: build took $(( $(date +%s) - start )) s"

export ECP_WORKER_BIN="$PWD/.build/debug/ecp-worker"
export ECPCTL_BIN="$PWD/.build/debug/ecpctl"
export ECP_CONSOLE_BIN="$PWD/.build/debug/ecp-console"
swift test --skip-build 2>&1 | tee .build/swift-test.log
[[ ${PIPESTATUS[0]} -eq 0 ]] || exit 1

/usr/bin/python3 -m pytest -q Tests/conformance 2>&1 | tee .build/pytest.log

# The web console against two workers, in headless Chromium; screenshots in
# .build/console-artifacts (ECP_TEST_ARTIFACTS elsewhere).
export ECP_TEST_ARTIFACTS="${ECP_TEST_ARTIFACTS:-$PWD/.build/console-artifacts}"
/usr/bin/python3 -m pytest -q Tests/console 2>&1 | tee .build/pytest-console.log

# A short fuzz run of the command decoder: it must find nothing (ECP_FUZZ_SECONDS=0 skips it).
fuzz_seconds="${ECP_FUZZ_SECONDS:-60}"
if [[ "$fuzz_seconds" != "0" ]]; then
  scripts/fuzz.sh "$fuzz_seconds"
fi
swift_passed=$(grep -oE "Test run with [0-9]+ tests" .build/swift-test.log | grep -oE "[0-9]+" | tail -1)
python_passed=$(grep -oE "^[0-9]+ passed" .build/pytest.log | grep -oE "[0-9]+" | tail -1)
console_passed=$(grep -oE "^[0-9]+ passed" .build/pytest-console.log | grep -oE "[0-9]+" | tail -1)
echo "test: Swift $swift_passed tests, Python conformance $python_passed tests, web console $console_passed tests, fuzzing ${fuzz_seconds} s; $(( $(date +%s) - start )) s in all"
echo "$(( ${swift_passed:-0} + ${python_passed:-0} + ${console_passed:-0} )) passed, 0 failed"
