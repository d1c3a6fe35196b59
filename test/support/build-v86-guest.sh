#!/bin/bash
# Builds the tiny 32-bit Linux guest the v86 tests boot (issue 21) into $1 (a cache directory):
#   $1/vmlinuz         Debian's i386 kernel (apt-get download linux-image-<abi>-686-unsigned;
#                      nothing installed)
#   $1/initramfs.gz    busybox-static:i386 and the NIC modules: ne2k-pci (v86's default NIC) and
#                      virtio_pci + virtio_net; /init runs the test
#   $1/bios.bin, $1/vgabios.bin   SeaBIOS and its stdvga BIOS from Debian's seabios package
#   $1/VERSION         what the initramfs holds (GUEST_VERSION below); an older cache is rebuilt
# /init loads the modules, puts eth0 at $VQIP/24 (default 10.0.2.15; the peer is $VQPEER, default
# 10.0.2.2; both from the kernel command line) and prints, each on its own line for the
# host to parse from the serial console (ttyS0):
#   VQ-FEATURES <bits>   /sys/class/net/eth0/device/features when eth0 is a virtio device
#   VQ-ARPING <line>     arping's count of replies from $VQPEER (one request)
#   VQ-PING-BEGIN … VQ-PING-END   `ping -A -c $VQCOUNT -s $VQSIZE $VQPEER` (busybox)
#   VQ-ARP <line>        the kernel's ARP entry for $VQPEER (/proc/net/arp) after the pings
#   VQ-TCP-SHA <bytes> <sha256>   when VQTCP is set: $VQTCP bytes of /dev/urandom sent with
#                        `nc $VQPEER $VQPORT` (port 7070 default) after hashing them, so the host
#                        can check every byte of the stream (VQ-TCP-SENT <nc's exit code>), then
#   VQ-TCP-RX-END <nc's exit code>  as soon as that nc exits (before hashing: the end of the
#                        host→guest transfer, for bench/v86-nics.ts's timing), then
#   VQ-TCP-RX <bytes> <sha256>    what `nc $VQPEER $((VQPORT+1))` received until the host closed
#   VQ-DONE
# Then it powers off. Needs root (dpkg --add-architecture i386, apt-get download, dpkg-deb); the
# host's busybox-static (downloaded too) packs the initramfs.
set -euo pipefail
# A failing step says which (set -e alone exits silently: CI once logged nothing).
trap 'echo "build-v86-guest.sh: line $LINENO: \`$BASH_COMMAND\` failed (exit $?)" >&2' ERR
GUEST_VERSION=5-ne2k-virtio-ping-nc-rxend
out=$1
[ -s "$out/vmlinuz" ] && [ -s "$out/initramfs.gz" ] && [ -s "$out/bios.bin" ] && [ "$(cat "$out/VERSION" 2>/dev/null)" = "$GUEST_VERSION" ] && exit 0
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! dpkg --print-foreign-architectures | grep -qx i386; then
  dpkg --add-architecture i386
  apt-get update -q >/dev/null
fi
# The newest i386 kernel ABI the package lists know (linux-image-686 depends on it).
kernel_abi() {
  local abi
  abi=$(apt-cache depends linux-image-686:i386 2>/dev/null | sed -n 's/.*Depends: linux-image-\(.*\)-686.*$/\1/p' | head -1)
  [ -n "$abi" ] || abi=$(apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-686-unsigned$' | sed -n 's/^linux-image-\(.*\)-686-unsigned .*/\1/p' | sort -V | tail -1)
  echo "$abi"
}
fetch() {
  local abi
  abi=$(kernel_abi)
  [ -n "$abi" ] && apt-get download -q "linux-image-$abi-686-unsigned:i386" busybox-static:i386 seabios >/dev/null 2>&1 \
    && mkdir -p host && (cd host && apt-get download -q busybox-static >/dev/null 2>&1)
}
# Stale or missing package lists (a fresh machine): update once and try again.
fetch || { apt-get update -q >/dev/null 2>&1; fetch; } \
  || { echo "apt-get download of an i386 kernel (linux-image-*-686-unsigned:i386), busybox-static:i386 and seabios failed" >&2; exit 1; }
dpkg-deb -x linux-image-*.deb kernel
dpkg-deb -x busybox-static*.deb bb
dpkg-deb -x seabios*.deb sb
# The host's own busybox packs the initramfs: the guest's is i386, which a kernel without
# IA32 emulation cannot run (exit 126; seen on a CI machine).
dpkg-deb -x host/busybox-static*.deb hostbb
root=$work/root
mkdir -p "$root"/{bin,sbin,proc,sys,dev,lib/modules,tmp}
cp bb/bin/busybox "$root/bin/busybox"
MODS="8390 ne2k-pci virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net"
for m in $MODS; do
  f=$(find kernel/lib/modules -name "$m.ko*" | head -1)
  [ -n "$f" ] || { echo "module $m not found" >&2; exit 1; }
  case "$f" in
    *.xz) xz -dc "$f" > "$root/lib/modules/$m.ko" ;;
    *) cp "$f" "$root/lib/modules/$m.ko" ;;
  esac
done
cat > "$root/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp
for m in $MODS; do insmod /lib/modules/\$m.ko 2>/dev/null; done
INIT
cat >> "$root/init" <<'INIT'
ip link set lo up
PEER=${VQPEER:-10.0.2.2}
ip link set eth0 up && ip addr add "${VQIP:-10.0.2.15}/24" dev eth0
if [ -e /sys/class/net/eth0/device/features ]; then echo "VQ-FEATURES $(cat /sys/class/net/eth0/device/features)"; fi
echo "VQ-ARPING $(arping -c 1 -w 10 -I eth0 "$PEER" 2>&1 | grep -i 'received')"
echo VQ-PING-BEGIN
ping -A -q -c "${VQCOUNT:-100}" -s "${VQSIZE:-56}" -W 10 "$PEER" 2>&1
echo VQ-PING-END
echo "VQ-ARP $(grep "^$PEER " /proc/net/arp)"
if [ -n "${VQTCP:-}" ]; then
  head -c "$VQTCP" /dev/urandom > /tmp/tx
  echo "VQ-TCP-SHA $(wc -c < /tmp/tx) $(sha256sum < /tmp/tx)"
  nc -w 30 "$PEER" "${VQPORT:-7070}" < /tmp/tx
  echo "VQ-TCP-SENT $?"
  nc -w 30 "$PEER" "$(( ${VQPORT:-7070} + 1 ))" < /dev/null > /tmp/rx
  echo "VQ-TCP-RX-END $?"
  echo "VQ-TCP-RX $(wc -c < /tmp/rx) $(sha256sum < /tmp/rx)"
fi
echo VQ-DONE
poweroff -f
INIT
chmod +x "$root/init"
cp kernel/boot/vmlinuz-* "$out/vmlinuz.tmp"
cp sb/usr/share/seabios/bios.bin "$out/bios.bin"
cp sb/usr/share/seabios/vgabios-stdvga.bin "$out/vgabios.bin"
(cd "$root" && find . | "$work/hostbb/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1) > "$out/initramfs.gz.tmp"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
mv "$out/initramfs.gz.tmp" "$out/initramfs.gz"
echo "$GUEST_VERSION" > "$out/VERSION"
