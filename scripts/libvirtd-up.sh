#!/usr/bin/env bash
# Brings up libvirtd with the QEMU driver on a Debian machine, as root, so that qemu:///system
# answers. Idempotent. A libvirtd that is already running is used as it is: this script never
# reconfigures or stops a libvirtd it did not start (scripts/libvirtd-down.sh stops only its own).
#
# Exit status: 0 when qemu:///system answers; 2 when it cannot be had here (not root, no QEMU),
# with the reason on stderr.
set -euo pipefail
state=/run/ecp-libvirtd
uri=qemu:///system

say() { echo "libvirtd-up: $*" >&2; }
answers() { timeout 10 virsh -q -c "$uri" version >/dev/null 2>&1; }

if answers; then
  if [[ -f $state/started ]]; then say "libvirtd (started by this script) answers at $uri"
  else say "a libvirtd this script did not start answers at $uri; using it as it is"; fi
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  say "not root: cannot start libvirtd (run as root, or start libvirtd yourself)"
  exit 2
fi
if pgrep -x libvirtd >/dev/null; then
  say "a libvirtd is running but $uri does not answer; not touching it"
  exit 2
fi

need=(libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 libvirt-clients)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for prog in qemu-system-x86_64 libvirtd virtlogd virsh; do
  command -v "$prog" >/dev/null || { say "$prog is not installed"; exit 2; }
done

# QEMU runs as root here without a security driver: a test host, not a production one. The
# packaged qemu.conf is kept aside and put back by libvirtd-down.sh.
getent group kvm >/dev/null || groupadd -r kvm
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
id libvirt-qemu >/dev/null 2>&1 || useradd -r -g kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
mkdir -p /var/log/libvirt /var/run/libvirt /var/lib/libvirt/qemu /etc/libvirt "$state"
conf=/etc/libvirt/qemu.conf
if ! grep -q '^# ecp-worker test host' "$conf" 2>/dev/null; then
  [[ -f $conf && ! -f $state/qemu.conf.orig ]] && cp -p "$conf" "$state/qemu.conf.orig"
  cat > "$conf" <<'CONF'
# ecp-worker test host: QEMU runs as root without a security driver.
user = "root"
group = "root"
security_driver = "none"
CONF
fi

pgrep -x virtlogd >/dev/null || { virtlogd -d; touch "$state/virtlogd"; }
libvirtd -d
touch "$state/started"

for _ in $(seq 1 100); do
  if answers; then say "libvirtd answers at $uri"; exit 0; fi
  sleep 0.1
done
say "libvirtd started but $uri does not answer; see /var/log/libvirt"
exit 1
