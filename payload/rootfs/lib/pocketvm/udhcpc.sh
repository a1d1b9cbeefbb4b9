#!/bin/sh
# busybox udhcpc's event script (35-network.sh): udhcpc passes the event as
# $1 and the lease in the environment ($interface, $ip, $mask (prefix bits),
# $router, $dns, $domain). Only what user-mode networking hands out is used.
case $1 in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set dev "$interface" up
	rm -f /run/pocketvm/network-address
	;;
bound | renew)
	ip -4 addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	for gateway in $router; do
		ip route replace default via "$gateway" dev "$interface"
		break
	done
	{
		echo "# From DHCP on $interface (/lib/pocketvm/udhcpc.sh)"
		[ -n "$domain" ] && echo "search $domain"
		for server in $dns; do echo "nameserver $server"; done
	} >/etc/resolv.conf.new && mv -f /etc/resolv.conf.new /etc/resolv.conf
	echo "$ip" >/run/pocketvm/network-address
	;;
esac
exit 0
