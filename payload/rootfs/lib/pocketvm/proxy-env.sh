#!/bin/sh
# `reg ls 'Host\Proxy'` on stdin → shell lines exporting http_proxy,
# https_proxy and no_proxy (either case) on stdout, for /etc/pocketvm/proxy.env.
#
# A proxy on the host's own loopback (127.x, localhost, [::1]) is reached from
# the guest as 10.0.2.2, user-mode networking's address for the host's
# 127.0.0.1. The values come from the host probe (a session fact the guest
# cannot write), but they end up in a file every shell sources, so anything
# but URL characters is refused rather than quoted.
. /lib/pocketvm/lib.sh
http= https= no=
# A multi-string's items come joined by an escaped \n: printf, not echo, which
# in dash (the desktop image's /bin/sh) would make it a newline.
while IFS='	' read -r name _type _layer value; do
	case $name in
	Http) http=$value ;;
	Https) https=$value ;;
	NoProxy) no=$(printf '%s\n' "$value" | sed 's/\\n/,/g') ;;
	esac
done
guest_side() {
	echo "$1" | sed -E 's#^(([A-Za-z][A-Za-z0-9+.-]*://)?([^@/]*@)?)(127\.[0-9.]+|localhost|\[::1\])([:/]|$)#\110.0.2.2\5#'
}
safe() {
	case $1 in
	*[!A-Za-z0-9._:/@*%+=,~\[\]-]*)
		log "the host's proxy setting \"$1\" has characters a URL does not: the guest gets no proxy"
		return 1
		;;
	esac
}
[ -n "$http$https" ] || exit 0
http=$(guest_side "$http")
https=$(guest_side "$https")
safe "$http" && safe "$https" && safe "$no" || exit 1
echo "# The host's proxy (Host\\Proxy in the registry), written at boot by 35-network.sh."
[ -n "$http" ] && echo "export http_proxy='$http' HTTP_PROXY='$http'"
[ -n "$https" ] && echo "export https_proxy='$https' HTTPS_PROXY='$https'"
# Names the guest reaches directly; the host's own list follows.
no="localhost,127.0.0.1${no:+,$no}"
echo "export no_proxy='$no' NO_PROXY='$no'"
exit 0
