# The guest's own network (docs/network.md), when the command line has
# pocketvm.net=MAC: QEMU's user-mode networking on the virtio card with that
# address (10-device-modules.sh has loaded virtio_net). DHCP with busybox
# udhcpc (/lib/pocketvm/udhcpc.sh sets the address, the route and
# /etc/resolv.conf), then the host's proxy settings from the registry
# (Host\Proxy, put there by the host probe) as http_proxy, https_proxy and
# no_proxy in /etc/pocketvm/proxy.env, which /etc/profile and init (for the
# services) read.
#
# User-mode networking answers DHCP at once, so the lease is taken here,
# before the services start: a program started at boot finds the network up.
# The lease is never renewed: libslirp keeps no lease state and never takes
# an address back, and the address stays configured without udhcpc.
. /lib/pocketvm/lib.sh
mac=$(cmdline_value pocketvm.net) || exit 0
ip link set dev lo up

ifc=
for dev in /sys/class/net/*; do
	read -r address <"$dev/address" 2>/dev/null || continue
	[ "$address" = "$mac" ] && ifc=${dev##*/}
done
[ -n "$ifc" ] || {
	log "no network card with address $mac: the guest has no network"
	exit 1
}
ip link set dev "$ifc" up || exit 1
read -r started _ </proc/uptime
trace "network: DHCP on $ifc"
# -q: quit once bound; -t 5 -T 1: five discovers a second apart, then -b:
# go on trying in the background instead of holding up boot.
udhcpc -i "$ifc" -s /lib/pocketvm/udhcpc.sh -q -t 5 -T 1 -b >>/run/log/network.log 2>&1
read -r bound _ </proc/uptime
# When the lease came (boot's uptime, seconds) and how long DHCP took: bench/network reads these.
[ -e /run/pocketvm/network-address ] && echo "$bound $started" >/run/pocketvm/network-lease
trace "network: $(cat /run/pocketvm/network-address 2>/dev/null || echo 'no lease yet') on $ifc"

# The host's proxy, only with a registry (a logged-in user).
cmdline_has pocketvm.registry || exit 0
# One round trip: NAME<tab>TYPE<tab>LAYER<tab>VALUE, a multi-string's items
# joined by an escaped newline.
reg ls 'Host\Proxy' >/run/pocketvm/proxy.ls 2>/dev/null || exit 0
/lib/pocketvm/proxy-env.sh </run/pocketvm/proxy.ls >/etc/pocketvm/proxy.env.new &&
	mv -f /etc/pocketvm/proxy.env.new /etc/pocketvm/proxy.env
exit 0
