#!/bin/bash
# Builds a tiny Linux guest for the QEMU real-peer tests into $1 (a cache directory):
#   $1/vmlinuz         Debian's kernel (apt-get download linux-image-<abi>-amd64; nothing installed)
#   $1/initramfs.gz    busybox-static + virtio modules + iputils ping + iperf3 + ethtool (the
#                      host's binaries with the libraries ldd names); /init runs the test
#   $1/VERSION         what the initramfs holds (GUEST_VERSION below): a cache from an older
#                      script (no iperf3, no agent mode) is rebuilt
# /init loads virtio_net, puts eth0 at 10.78.0.1/24 and, per VQMODE on the kernel command line:
#   ping (default)  `ping -f -c $VQCOUNT 10.78.0.2`, output between VQ-BEGIN/VQ-END;
#   tcp             the negotiated features (VQ-FEATURES: /sys/class/net/eth0/device/features,
#                   bit 0 first), `ethtool -k eth0` (VQ-ETHTOOL-BEGIN/END), the flood ping as
#                   above, then iperf3 to 10.78.0.2 with $VQBYTES bytes guest → host and
#                   host → guest (-R), each JSON report between VQ-IPERF-TX/RX-BEGIN and -END,
#                   then $VQBYTES random bytes (base64 guest → host: busybox wget posts a
#                   C string) each way over HTTP on 10.78.0.2:8080 (busybox
#                   wget: POST /sink, GET /source) with their SHA-256 (VQ-TX-SHA, VQ-SINK,
#                   VQ-RX lines), so the host can check every byte arrived intact.
#   VQQUEUES=N      (multiqueue, with tcp) first `ethtool -L eth0 combined N` and `ethtool -l`
#                   (VQ-CHANNELS-BEGIN/END, with the exit status), and at the end one iperf3
#                   flow per queue pair guest → host, flow i pinned (taskset) to CPU i and
#                   queue i's XPS set to CPU i, to port 5201+i, $VQBYTES each
#                   (VQ-IPERF-MQ<i>-BEGIN/END); needs as many vCPUs. Then the pairs shrink
#                   and grow back (ethtool -L combined 1, a flood ping, combined N, a flood
#                   ping: VQ-REPAIR-BEGIN/END with each ethtool status).
#   agent           echoes off on ttyS0, prints VQ-AGENT-READY, then runs each line the host
#                   writes to the serial port as a shell command (the host brackets each with its
#                   own markers: `virtq study --guest qemu` runs iperf3 and ping -f this way,
#                   between preset switches, in one boot); `quit` powers off.
# Then it powers off. Reuses an existing build of the same version. Needs root (apt-get
# download, dpkg-deb), and iperf3 and ethtool on the host to copy in.
set -euo pipefail
# A failing step says which (set -e alone exits silently: CI once logged nothing).
trap 'echo "build-linux-guest.sh: line $LINENO: \`$BASH_COMMAND\` failed (exit $?)" >&2' ERR
GUEST_VERSION=7-iperf3-ethtool-http-mq-agent
out=$1
[ -s "$out/vmlinuz" ] && [ -s "$out/initramfs.gz" ] && [ "$(cat "$out/VERSION" 2>/dev/null)" = "$GUEST_VERSION" ] && exit 0
for tool in ping iperf3 ethtool; do
  command -v "$tool" >/dev/null || { echo "$tool not found on the host (apt-get install iputils-ping iperf3 ethtool)" >&2; exit 1; }
done
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
for tool in ping iperf3 ethtool; do
  bin=$(command -v "$tool")
  cp -L "$bin" "$root/usr/bin/$tool"
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
done
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_mmio failover net_failover virtio_net; do
  insmod /lib/modules/$m.ko 2>/dev/null
done
ip link set lo up
ip link set eth0 up && ip addr add 10.78.0.1/24 dev eth0
if [ "${VQMODE:-ping}" = agent ]; then
  stty -F /dev/ttyS0 -echo
  exec 3</dev/ttyS0
  echo VQ-AGENT-READY
  while read -r line <&3; do
    [ "$line" = quit ] && break
    eval "$line"
  done
  poweroff -f
fi
if [ "${VQMODE:-ping}" = tcp ]; then
  echo "VQ-FEATURES $(cat /sys/class/net/eth0/device/features)"
  echo VQ-ETHTOOL-BEGIN
  /usr/bin/ethtool -k eth0 2>&1
  echo VQ-ETHTOOL-END
  if [ -n "${VQQUEUES:-}" ]; then
    echo VQ-CHANNELS-BEGIN
    /usr/bin/ethtool -L eth0 combined "$VQQUEUES" 2>&1
    echo "ethtool -L status $?"
    /usr/bin/ethtool -l eth0 2>&1
    echo VQ-CHANNELS-END
  fi
fi
echo VQ-BEGIN
/usr/bin/ping -f -q -c "${VQCOUNT:-1000}" -w 120 10.78.0.2 2>&1
echo VQ-END
if [ "${VQMODE:-ping}" = tcp ]; then
  echo VQ-IPERF-TX-BEGIN
  /usr/bin/iperf3 -c 10.78.0.2 -n "${VQBYTES:-4M}" -J 2>&1
  echo VQ-IPERF-TX-END
  echo VQ-IPERF-RX-BEGIN
  /usr/bin/iperf3 -c 10.78.0.2 -n "${VQBYTES:-4M}" -R -J 2>&1
  echo VQ-IPERF-RX-END
  head -c "$(( ${VQBYTES:-4194304} * 3 / 4 ))" /dev/urandom | base64 > /tmp/tx
  echo "VQ-TX-SHA $(wc -c < /tmp/tx) $(sha256sum < /tmp/tx)"
  wget -q -O - --post-file /tmp/tx http://10.78.0.2:8080/sink 2>&1
  echo
  wget -q -O /tmp/rx http://10.78.0.2:8080/source 2>&1
  echo "VQ-RX $(wc -c < /tmp/rx) $(sha256sum < /tmp/rx)"
  if [ -n "${VQQUEUES:-}" ]; then
    i=0
    while [ "$i" -lt "$VQQUEUES" ]; do
      # Transmit queue i serves CPU i only (XPS), and flow i runs on CPU i.
      printf '%x' $((1 << i)) > /sys/class/net/eth0/queues/tx-$i/xps_cpus 2>/dev/null
      taskset $((1 << i)) /usr/bin/iperf3 -c 10.78.0.2 -p $((5201 + i)) -n "${VQBYTES:-4M}" -J > /tmp/mq$i 2>&1 &
      i=$((i + 1))
    done
    wait
    i=0
    while [ "$i" -lt "$VQQUEUES" ]; do
      echo VQ-IPERF-MQ$i-BEGIN
      cat /tmp/mq$i
      echo VQ-IPERF-MQ$i-END
      i=$((i + 1))
    done
    echo VQ-REPAIR-BEGIN
    /usr/bin/ethtool -L eth0 combined 1 2>&1
    echo "ethtool -L 1 status $?"
    /usr/bin/ping -f -q -c 500 -w 60 10.78.0.2 2>&1
    /usr/bin/ethtool -L eth0 combined "$VQQUEUES" 2>&1
    echo "ethtool -L $VQQUEUES status $?"
    /usr/bin/ping -f -q -c 500 -w 60 10.78.0.2 2>&1
    echo VQ-REPAIR-END
  fi
fi
poweroff -f
INIT
chmod +x "$root/init"
cp kernel/boot/vmlinuz-* "$out/vmlinuz.tmp"
(cd "$root" && find . | ./bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$out/initramfs.gz.tmp"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
mv "$out/initramfs.gz.tmp" "$out/initramfs.gz"
echo "$GUEST_VERSION" > "$out/VERSION"
