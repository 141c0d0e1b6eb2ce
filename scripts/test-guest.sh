#!/usr/bin/env bash
# Makes the hypervisor tier's test guest: a Linux kernel and a busybox initramfs that boot under
# QEMU (TCG is enough) in a few seconds with 96 MiB, obey the ACPI power button, and say on their
# serial console what they are doing. Everything comes from Debian's packages and is cached: a
# second run with the same kernel package and this same script only prints the directory.
#
#   scripts/test-guest.sh            prints the directory that holds vmlinuz and initrd.img
#
# The cache is $ECP_TEST_GUEST_DIR, or /var/cache/ecp-worker/test-guest as root
# (~/.cache/ecp-worker/test-guest otherwise). Nothing of it is committed.
#
# What the guest's /init does, in order, each step a line on the console (ttyS0):
#   ecp-test-guest: booted          as soon as it runs (once per boot: a reboot shows it again)
#   ecp-test-guest: ignoring acpi   only with ecp_ignore_acpi_s=N on the kernel command line: it
#                                   waits N seconds with the power button closed, as a real OS
#                                   does until its daemons run; a press meanwhile is lost
#   ecp-test-guest: listening       the power button is open; a press from now on powers it off
#   ecp-test-guest: powering off    the button was pressed
set -euo pipefail

say() { echo "test-guest: $*" >&2; }

if [[ -n "${ECP_TEST_GUEST_DIR:-}" ]]; then dir=$ECP_TEST_GUEST_DIR
elif [[ $(id -u) -eq 0 ]]; then dir=/var/cache/ecp-worker/test-guest
else dir=${XDG_CACHE_HOME:-$HOME/.cache}/ecp-worker/test-guest; fi

for prog in apt-get apt-cache dpkg-deb cpio gzip sha256sum; do
  command -v "$prog" >/dev/null || { say "$prog is not installed (scripts/install-deps.sh --test installs what is missing)"; exit 2; }
done

# The kernel package that linux-image-cloud-amd64 names (its candidate version); the package
# lists are read once if this machine has none yet.
kernel_package() {
  apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'
}
package=$(kernel_package)
if [[ -z $package ]]; then
  [[ $(id -u) -eq 0 ]] || { say "no package list names linux-image-cloud-amd64; run apt-get update as root"; exit 2; }
  say "reading the package lists"
  apt-get update -qq
  package=$(kernel_package)
fi
[[ -n $package ]] || { say "linux-image-cloud-amd64 names no kernel package here"; exit 2; }
version=$(apt-cache policy "$package" | awk '$1 == "Candidate:" { print $2 }')
stamp="$package $version $(sha256sum < "${BASH_SOURCE[0]}" | cut -c1-16)"

if [[ -f $dir/stamp && $(cat "$dir/stamp") == "$stamp" && -f $dir/vmlinuz && -f $dir/initrd.img ]]; then
  echo "$dir"
  exit 0
fi

say "building from $package $version and busybox-static into $dir"
mkdir -p "$dir"
work=$(mktemp -d "$dir/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q "$package" busybox-static 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
kdeb=$(ls "$work"/linux-image-*.deb 2>/dev/null | head -1)
bdeb=$(ls "$work"/busybox-static_*.deb 2>/dev/null | head -1)
[[ -n $kdeb && -n $bdeb ]] || { say "apt-get download of $package and busybox-static failed"; exit 1; }
dpkg-deb -x "$kdeb" "$work/kernel"
dpkg-deb -x "$bdeb" "$work/busybox"

root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,lib}
cp "$work/busybox/bin/busybox" "$root/bin/busybox"
for m in kernel/drivers/input/evdev.ko kernel/drivers/acpi/button.ko; do
  found=$(find "$work/kernel/lib/modules" -path "*/$m*" | head -1)
  [[ -n $found ]] || { say "$package has no module $m"; exit 1; }
  case $found in
    *.ko) cp "$found" "$root/lib/" ;;
    *.ko.xz) xz -dc "$found" > "$root/lib/$(basename "${found%.xz}")" ;;
    *.ko.zst) zstd -qdc "$found" > "$root/lib/$(basename "${found%.zst}")" ;;
    *) say "cannot read module $found"; exit 1 ;;
  esac
done

cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "ecp-test-guest: $*" > /dev/console; }
say booted
insmod /lib/evdev.ko
insmod /lib/button.ko
for word in $(cat /proc/cmdline); do
  case $word in ecp_ignore_acpi_s=*) say "ignoring acpi"; sleep "${word#*=}" ;; esac
done
# Every "Power Button" input device is opened before the line that says so: a press that comes
# after the line is never lost.
fd=3
for ev in /sys/class/input/event*; do
  [ "$(cat "$ev/device/name" 2>/dev/null)" = "Power Button" ] || continue
  eval "exec $fd</dev/input/${ev##*/}"
  (dd bs=24 count=1 2>/dev/null <&$fd >/dev/null; say "powering off"; poweroff -f) &
  fd=$((fd + 1))
done
[ "$fd" -gt 3 ] || say "no power button"
say listening
while true; do sleep 3600; done
INIT
chmod 755 "$root/init"

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) > "$work/initrd.img"
cp "$(ls "$work"/kernel/boot/vmlinuz-* | head -1)" "$work/vmlinuz"
mv -f "$work/vmlinuz" "$work/initrd.img" "$dir/"
echo "$stamp" > "$dir/stamp"
say "made $dir/vmlinuz and $dir/initrd.img"
echo "$dir"
