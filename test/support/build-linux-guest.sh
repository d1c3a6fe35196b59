#!/bin/bash
# Builds a tiny Linux guest for the QEMU real-peer test into $1 (a cache directory):
#   $1/vmlinuz         Debian's kernel (apt-get download linux-image-<abi>-amd64; nothing installed)
#   $1/initramfs.gz    busybox-static + virtio modules + iputils ping; /init runs the test
# The /init loads virtio_net, puts eth0 at 10.78.0.1/24 and runs `ping -f -c $VQCOUNT 10.78.0.2`
# (VQCOUNT comes from the kernel command line), printing VQ-BEGIN/VQ-END around the output,
# then powers off. Reuses an existing build. Needs root (apt-get download, dpkg-deb).
set -euo pipefail
out=$1
[ -s "$out/vmlinuz" ] && [ -s "$out/initramfs.gz" ] && exit 0
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
abi=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: linux-image-\(.*\)-amd64$/\1/p' | head -1)
[ -n "$abi" ] || { echo "cannot find the linux-image-amd64 kernel ABI (run apt-get update)" >&2; exit 1; }
apt-get download -q "linux-image-$abi-amd64" busybox-static >/dev/null 2>&1
dpkg-deb -x linux-image-*.deb kernel
dpkg-deb -x busybox-static*.deb bb
root=$work/root
mkdir -p "$root"/{bin,sbin,proc,sys,dev,lib/modules,lib64,lib/x86_64-linux-gnu,usr/bin,tmp}
cp bb/bin/busybox "$root/bin/busybox"
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_mmio failover net_failover virtio_net; do
  f=$(find kernel/lib/modules -name "$m.ko*" | head -1)
  [ -n "$f" ] || { echo "module $m not found" >&2; exit 1; }
  case "$f" in
    *.xz) xz -dc "$f" > "$root/lib/modules/$m.ko" ;;
    *) cp "$f" "$root/lib/modules/$m.ko" ;;
  esac
done
cp /usr/bin/ping "$root/usr/bin/ping"
for lib in $(ldd /usr/bin/ping | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_mmio failover net_failover virtio_net; do
  insmod /lib/modules/$m.ko 2>/dev/null
done
ip link set lo up
ip link set eth0 up && ip addr add 10.78.0.1/24 dev eth0
echo VQ-BEGIN
/usr/bin/ping -f -q -c "${VQCOUNT:-1000}" -w 120 10.78.0.2 2>&1
echo VQ-END
poweroff -f
INIT
chmod +x "$root/init"
cp kernel/boot/vmlinuz-* "$out/vmlinuz.tmp"
(cd "$root" && find . | ./bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$out/initramfs.gz.tmp"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
mv "$out/initramfs.gz.tmp" "$out/initramfs.gz"
