# The image system of boot.d/45-image-system.sh: its init is asked to stop
# (SIGTERM to its namespace's processes, 3 s), then /image is unmounted so the
# overlay holds everything the image wrote (and its LVM volume's loop device let go).
. /lib/pocketvm/lib.sh

grep -q ' /image ' /proc/mounts || exit 0
if read -r pid 2>/dev/null </run/pocketvm/image.pid; then
	# unshare's child is the image's init; signal the whole tree below unshare.
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = /image ] && kill -TERM "${p#/proc/}" 2>/dev/null
	done
	i=0
	while [ $i -lt 60 ] && [ -d "/proc/$pid" ]; do
		i=$((i + 1))
		sleep 0.05
	done
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = /image ] && kill -KILL "${p#/proc/}" 2>/dev/null
	done
fi
sync
umount /image/sys /image/proc 2>/dev/null
umount -l /image/dev 2>/dev/null
umount /image 2>/dev/null || mount -o remount,ro /image 2>/dev/null
read -r loop 2>/dev/null </run/pocketvm/image.loop && losetup -d "$loop" 2>/dev/null
sync
