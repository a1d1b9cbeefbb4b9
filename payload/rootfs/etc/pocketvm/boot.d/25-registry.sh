# The guest registry (docs/registry.md, "The registry inside the guest"). With a user
# logged in, the launcher serves it on the virtio port org.pocketvm.registry.0
# and says so on the command line (pocketvm.registry). Here: give the port to
# the user (uid 1000) with a lock file for `reg`, save the merged view as
# /etc/pocketvm/registry.reg, and apply the well-known values. For the time
# zone and keyboard layout the person's own choice (Guest\X in their user or
# host layer) wins, then this PC's (Host\Timezone, Host\Keyboard: session
# facts), then the payload default: the guest follows the PC it runs on.
. /lib/pocketvm/lib.sh
cmdline_has pocketvm.registry || exit 0

port=/dev/virtio-ports/org.pocketvm.registry.0
wait_for_port org.pocketvm.registry.0 || {
	log "no registry port $port: the registry is not applied"
	exit 1
}
# chown and chmod follow the link to the port's device node.
chown 1000:1000 "$port" && chmod 0600 "$port"
: >/run/pocketvm/registry.lock
chmod 0644 /run/pocketvm/registry.lock

# Two round trips: the merged view (saved; Host\... read from it) and the
# Guest key with the layer of each value. Names are case-insensitive. What a
# value may contain is checked below: the user can write these, and this
# runs as root.
reg export >/etc/pocketvm/registry.reg.new || exit 1
mv -f /etc/pocketvm/registry.reg.new /etc/pocketvm/registry.reg
reg ls Guest >/run/pocketvm/registry-guest.ls || exit 1
trace "registry read"
settings=$(awk '
	FILENAME ~ /\.ls$/ {
		split($0, field, "\t")
		if (field[2] == "string") print (field[3] == "defaults" ? "default." : "guest.") tolower(field[1]) "=" field[4]
		next
	}
	/^\[/ { key = tolower($0); next }
	key != "[hkey_pocketvm\\host]" { next }
	match($0, /^"[A-Za-z]+"="/) {
		name = tolower(substr($0, 2, RLENGTH - 4))
		value = substr($0, RLENGTH + 1)
		if (sub(/"$/, "", value)) print "host." name "=" value
	}
' /run/pocketvm/registry-guest.ls /etc/pocketvm/registry.reg)
hostname= timezone= keyboard= variant=
default_hostname= default_timezone= default_keyboard=
host_timezone= host_keyboard= host_variant=
while IFS= read -r line; do
	value=${line#*=}
	case ${line%%=*} in
	guest.hostname) hostname=$value ;;
	guest.timezone) timezone=$value ;;
	guest.keyboard) keyboard=$value ;;
	default.hostname) default_hostname=$value ;;
	default.timezone) default_timezone=$value ;;
	default.keyboard) default_keyboard=$value ;;
	host.timezone) host_timezone=$value ;;
	host.keyboard) host_keyboard=$value ;;
	host.keyboardvariant) host_variant=$value ;;
	esac
done <<EOF
$settings
EOF
[ -n "$hostname" ] || hostname=$default_hostname
[ -n "$timezone" ] || timezone=${host_timezone:-$default_timezone}
if [ -z "$keyboard" ]; then
	if [ -n "$host_keyboard" ]; then
		keyboard=$host_keyboard
		variant=$host_variant
	else
		keyboard=$default_keyboard
	fi
fi

if [ -n "$hostname" ]; then
	case $hostname in
	*[!A-Za-z0-9.-]* | [.-]* | *[.-] | *..*)
		log "Guest\\Hostname is not a host name (letters, digits, - and .); keeping pocketvm"
		;;
	*)
		if [ ${#hostname} -le 63 ]; then
			echo "$hostname" >/proc/sys/kernel/hostname
			echo "$hostname" >/etc/hostname
		else
			log "Guest\\Hostname is longer than 63 characters; keeping pocketvm"
		fi
		;;
	esac
fi

# /etc/localtime is what every program's libc reads (no TZ needed anywhere).
if [ -n "$timezone" ]; then
	case $timezone in
	/* | *..* | *[!A-Za-z0-9/_+-]*)
		log "the timezone \"$timezone\" is not a zone name; keeping UTC"
		;;
	*)
		if [ -f "/usr/share/zoneinfo/$timezone" ]; then
			ln -sf "/usr/share/zoneinfo/$timezone" /etc/localtime
			echo "$timezone" >/etc/timezone
		else
			log "no zone \"$timezone\" in /usr/share/zoneinfo; keeping UTC"
		fi
		;;
	esac
fi

# A serial console has no keymap to load: the layout is recorded in Debian's
# /etc/default/keyboard, where a desktop (X11 or Wayland) reads it.
layout=$keyboard
case $layout$variant in
*[!A-Za-z0-9_,-]*)
	log "the keyboard layout \"$layout\" is not a layout name; keeping us"
	;;
*)
	if [ -n "$layout" ]; then
		mkdir -p /etc/default
		cat >/etc/default/keyboard <<EOF
# From the guest registry at boot: the user's Guest\\Keyboard, else this PC's layout.
XKBMODEL="pc105"
XKBLAYOUT="$layout"
XKBVARIANT="$variant"
XKBOPTIONS=""
BACKSPACE="guess"
EOF
	fi
	;;
esac
trace "registry applied"
exit 0
