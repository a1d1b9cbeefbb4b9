# The dyntable namespace (docs/tables-and-namespace.md, "The namespace in
# the guest"): host files
# chosen by the FIT/FET rules, served by the launcher's 9P2000.L server and
# mounted on /host when the command line has pocketvm.9p=MAC (20-9p-modules.sh
# has loaded 9p and 9pnet_pocketvm by then).
#
# Transport: 9P messages in raw Ethernet frames (9pnet_pocketvm, payload/kmod)
# on the virtio network card with address MAC, whose other end is a socketpair
# the launcher holds. The card gets no IP address and no IPv6, so nothing but
# the kernel's 9P client talks on it; raw frames need root.
. /lib/pocketvm/lib.sh
mac=$(cmdline_value pocketvm.9p) || exit 0
mnt=/host

ifc=
for dev in /sys/class/net/*; do
	read -r address <"$dev/address" 2>/dev/null || continue
	[ "$address" = "$mac" ] && ifc=${dev##*/}
done
[ -n "$ifc" ] || {
	log "no network card with address $mac: $mnt is not mounted"
	exit 1
}
echo 1 >"/proc/sys/net/ipv6/conf/$ifc/disable_ipv6" 2>/dev/null
# The largest MTU: virtio-net then receives a 64 KiB frame into page-sized
# buffers rather than 1.5 KiB ones.
ip link set dev "$ifc" mtu 65535 && ip link set dev "$ifc" up || {
	log "cannot bring up $ifc: $mnt is not mounted"
	exit 1
}
# Frames are dropped until the link reports carrier (a moment after up).
i=0
until [ "$(cat "/sys/class/net/$ifc/carrier" 2>/dev/null)" = 1 ]; do
	i=$((i + 1))
	[ $i -gt 500 ] && {
		log "$ifc has no carrier: $mnt is not mounted"
		exit 1
	}
	sleep 0.02
done

mkdir -p "$mnt"
# Options (docs/internals.md, "The namespace transport", explains each):
#  msize=1052672  1 MiB of data per Tread/Twrite plus a page for the header
#                 (NAMESPACE_MSIZE): with msize exactly 1 MiB a 1 MiB read
#                 is a Tread of 1 MiB - 24 and a second one for the last 24
#                 bytes, a whole round trip for nothing
#  cache=mmap     no page or attribute cache (every read sees the host's file as it
#                 is now; writes land on the stick at once), but shared writable mmap
#                 works for programs that need it
#  nosuid,nodev   host files never grant privileges or reach devices in the guest
# The kill-timeout keeps a silent server from hanging boot.
opts=trans=pocketvm,version=9p2000.L,msize=1052672,cache=mmap,noatime,nosuid,nodev
if ! timeout -s KILL 60 mount -t 9p -o "$opts" "$ifc" "$mnt"; then
	log "mounting the namespace on $mnt failed"
	exit 1
fi
echo "$mnt" >/run/pocketvm/namespace-mounted
trace "namespace mounted on $mnt over $ifc"
exit 0
