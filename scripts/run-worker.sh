#!/usr/bin/env bash
# Installs what is missing, builds the worker (release) and runs it. Arguments go to ecp-worker;
# with none it runs on libvirt's built-in test driver (test:///default).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d /opt/swift/usr/bin ]] && export PATH="/opt/swift/usr/bin:$PATH"
scripts/install-deps.sh
# The Swift runtime linked in: the worker then pages in only the parts it runs (less memory).
swift build -c release --static-swift-stdlib >&2
exec .build/release/ecp-worker "$@"
