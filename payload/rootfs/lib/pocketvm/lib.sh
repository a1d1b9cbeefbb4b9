# Shell functions shared by /init, the boot steps and the service run scripts.
# Sourced, never run. Functions keep their variables `local`: the scripts
# that source them use names like $port and $name too. Everything here avoids forks where a builtin will do:
# under software emulation (TCG) every fork+exec costs milliseconds of boot.

PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

log() {
	echo "pocketvm: $*" >/dev/console
}

# Boot timing on the console, only with pocketvm.trace on the command line
# (init sets the flag file), for finding where boot time goes.
trace() {
	[ -e /run/pocketvm/trace ] || return 0
	local up _
	read -r up _ </proc/uptime
	echo "pocketvm: [$up] $*" >/dev/console
}

# Loads one module group (/etc/pocketvm/modules/GROUP, written at build time
# in dependency order: "name /lib/modules/.../name.ko" per line). Modules
# already loaded by another group are skipped.
load_modules() {
	local name path
	[ -r "/etc/pocketvm/modules/$1" ] || return 0
	while read -r name path; do
		[ -d "/sys/module/$name" ] && continue
		insmod "$path" || log "insmod $name failed"
	done <"/etc/pocketvm/modules/$1"
}

# True when a virtio device of the given id (e.g. 0x0002 block, 0x0001 net) exists.
has_virtio_device() {
	local f id
	for f in /sys/bus/virtio/devices/*/device; do
		[ -r "$f" ] || continue
		read -r id <"$f"
		[ "$id" = "$1" ] && return 0
	done
	return 1
}

# True when the kernel command line has the word (or word=value).
cmdline_has() {
	local cmdline
	read -r cmdline </proc/cmdline
	case " $cmdline " in
	*" $1 "* | *" $1="*) return 0 ;;
	esac
	return 1
}

# Prints the value of word=value on the kernel command line (nothing if absent).
cmdline_value() {
	local word
	for word in $(cat /proc/cmdline); do
		case "$word" in
		"$1="*) echo "${word#*=}" && return 0 ;;
		esac
	done
	return 1
}

# There is no udev: make /dev/virtio-ports/NAME point at /dev/vportNpM, as
# udev's rule would. Port names arrive asynchronously from the host, so
# callers retry until the port they want shows up.
link_virtio_ports() {
	local sysport name
	[ -d /dev/virtio-ports ] || mkdir -p /dev/virtio-ports
	for sysport in /sys/class/virtio-ports/vport*; do
		[ -r "$sysport/name" ] || continue
		read -r name <"$sysport/name" || continue
		[ -n "$name" ] || continue
		[ -e "/dev/virtio-ports/$name" ] || ln -s "../${sysport##*/}" "/dev/virtio-ports/$name"
	done
}

# Waits (up to 10 s) for /dev/virtio-ports/NAME; false if it never shows up.
wait_for_port() {
	local i=0
	until [ -e "/dev/virtio-ports/$1" ]; do
		link_virtio_ports
		[ -e "/dev/virtio-ports/$1" ] && return 0
		i=$((i + 1))
		[ $i -gt 500 ] && return 1
		sleep 0.02
	done
}

# Runs every *.sh in a numbered step directory, in order, each in its own
# shell so one failing step cannot take init down with it.
run_steps() {
	local step
	for step in "$1"/*.sh; do
		[ -r "$step" ] || continue
		sh "$step" || log "step ${step##*/} failed (exit $?)"
	done
}
