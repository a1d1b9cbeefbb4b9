# A guest made from a catalog image (docs/guests.md, "Guests from catalog
# images"), when pocketvm.image=SERIAL is on the command line: the virtio disk
# with that serial is the user's encrypted overlay over the image. Its root
# partition (pocketvm.imagepart=N, 0 for a disk that is one file system) is
# mounted on /image (a root on an LVM logical volume, pocketvm.imagelv=VG/LV:
# through a loop device over its physical volume, lib/pocketvm/lvm-volume.sh)
# and the image's own init (/sbin/init) started there in its own PID and mount namespaces, its output on the console: its services,
# rc.local or systemd units, run as at the image's own boot, while this
# system (this kernel's modules, the agent, /host, exec) stays the platform.
# The step returns at once; the image's init runs beside the services.
. /lib/pocketvm/lib.sh
. /lib/pocketvm/lvm-volume.sh

serial=$(cmdline_value pocketvm.image) || exit 0
part=$(cmdline_value pocketvm.imagepart) || part=0
case $part in *[!0-9]*) log "pocketvm.imagepart is not a number"; exit 1 ;; esac

disk=
i=0
while [ $i -lt 250 ]; do
	for f in /sys/block/vd*/serial; do
		[ -r "$f" ] || continue
		read -r s <"$f"
		[ "$s" = "$serial" ] && disk=${f%/serial} && disk=/dev/${disk##*/}
	done
	dev=$disk
	[ "$part" != 0 ] && dev=$disk$part
	[ -n "$disk" ] && [ -b "$dev" ] && break
	disk=
	i=$((i + 1))
	sleep 0.02
done
[ -n "$disk" ] || { log "image system: no disk with serial $serial"; exit 1; }
if volume=$(cmdline_value pocketvm.imagelv); then
	load_modules lvm
	parts=
	for p in /sys/class/block/"${disk#/dev/}"/"${disk#/dev/}"*; do [ -e "$p/partition" ] && parts="$parts /dev/${p##*/}"; done
	# $parts unquoted: one argument a partition.
	where=$(lvm_volume "${volume%%/*}" "${volume#*/}" $parts 2>/run/pocketvm/lvm.err) || { log "image system: $(cat /run/pocketvm/lvm.err)"; exit 1; }
	set -- $where
	loop=$(losetup -f) && losetup -o "$2" "$loop" "$1" || { log "image system: no loop device for $volume"; exit 1; }
	echo "$loop" >/run/pocketvm/image.loop
	log "image system: the LVM volume $volume is $3 bytes at $2 of $1 ($loop)"
	# The name the image's fstab gives it (device-mapper's VG-LV, dashes doubled), for its own tools.
	vg=$(echo "${volume%%/*}" | sed 's/-/--/g')
	lv=$(echo "${volume#*/}" | sed 's/-/--/g')
	mkdir -p /dev/mapper && ln -sf "../${loop#/dev/}" "/dev/mapper/$vg-$lv"
	dev=$loop
fi
mkdir -p /image
mount -t ext4 -o rw,noatime "$dev" /image || { log "image system: cannot mount $dev"; exit 1; }
init=/sbin/init
[ -e "/image$init" ] || [ -L "/image$init" ] || { log "image system: the image has no $init; its files are on /image"; exit 0; }
mount -o rbind /dev /image/dev 2>/dev/null
mount -t sysfs -o nosuid,nodev,noexec sysfs /image/sys 2>/dev/null
log "image system: starting $init of $dev on /image"
# setsid: the image's init leads its own session; unshare's pid is kept for shutdown.d. The
# image's /proc is mounted inside the new namespaces (busybox's --mount-proc wants a mount point).
setsid unshare -p -f -m sh -c 'mount -t proc -o nosuid,nodev,noexec proc /image/proc && exec chroot /image "$0"' "$init" </dev/null >/dev/console 2>&1 &
echo $! >/run/pocketvm/image.pid
