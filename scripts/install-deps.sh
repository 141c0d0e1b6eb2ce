#!/usr/bin/env bash
# Installs what the worker needs on a Debian machine, and nothing that is already there.
#   scripts/install-deps.sh           build and run: libzmq and libvirt headers
#   scripts/install-deps.sh --test    also what the tests need (Python client, QEMU under libvirtd,
#                                     headless Chromium for the web console)
set -euo pipefail

want=(libzmq3-dev libvirt-dev pkg-config)
if [[ "${1:-}" == "--test" ]]; then
  # libvirtd and virtlogd come from libvirt-daemon, which the QEMU driver package does not pull
  # in; busybox-static and cpio build the test guest's initramfs (scripts/test-guest.sh);
  # systemd brings systemd-analyze, which checks the units in scripts/systemd (it needs no
  # running systemd); Chromium, its driver and Selenium run the web console's browser tests
  # (Tests/console), headless.
  want+=(libvirt-clients python3 python3-zmq python3-jsonschema python3-pytest
         prometheus python3-prometheus-client
         libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 busybox-static cpio
         systemd chromium chromium-driver python3-selenium)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing Debian packages: ${missing[*]}" >&2
    echo "install-deps: run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
  for d in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
    [[ -x "$d/swift" ]] && { echo "install-deps: Swift found at $d; add it to PATH" >&2; break; }
  done
  echo "install-deps: no Swift 6 toolchain on PATH; install one from swift.org (Debian has no package for it)" >&2
  exit 1
fi
