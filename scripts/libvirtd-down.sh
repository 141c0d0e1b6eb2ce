#!/usr/bin/env bash
# Stops the libvirtd (and virtlogd) that scripts/libvirtd-up.sh started, and puts the packaged
# qemu.conf back. Does nothing to a libvirtd it did not start.
set -euo pipefail
state=/run/ecp-libvirtd
say() { echo "libvirtd-down: $*" >&2; }
if [[ ! -f $state/started ]]; then
  say "no libvirtd started by libvirtd-up.sh; nothing to do"
  exit 0
fi
pkill -x libvirtd || true
for _ in $(seq 1 50); do pgrep -x libvirtd >/dev/null || break; sleep 0.1; done
if [[ -f $state/virtlogd ]]; then pkill -x virtlogd || true; rm -f "$state/virtlogd"; fi
if [[ -f $state/qemu.conf.orig ]]; then mv "$state/qemu.conf.orig" /etc/libvirt/qemu.conf; fi
rm -f "$state/started"
say "stopped"
