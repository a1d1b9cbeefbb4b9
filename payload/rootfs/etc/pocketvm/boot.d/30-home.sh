# The logged-in user's personal disk (virtio-blk, serial pocketvm-home,
# encrypted by QEMU on the host side): format it on first boot, mount it as
# the user's home, and create the user (uid/gid 1000). The user's name comes
# from the kernel command line (pocketvm.user=NAME); it is not a secret.
. /lib/pocketvm/lib.sh

read -r cmdline </proc/cmdline
user=
for word in $cmdline; do
	case $word in pocketvm.user=*) user=${word#pocketvm.user=} ;; esac
done
[ -n "$user" ] || exit 0
# The same rule as the launcher's: [a-z_][a-z0-9_-]{0,31}
case $user in
[a-z_]*) ;;
*) log "ignoring pocketvm.user: not a user name"; exit 1 ;;
esac
case $user in
*[!a-z0-9_-]*) log "ignoring pocketvm.user: not a user name"; exit 1 ;;
esac
[ ${#user} -le 32 ] || { log "ignoring pocketvm.user: too long"; exit 1; }

home=/home/$user
grep -q "^$user:" /etc/passwd || echo "$user:x:1000:1000:$user:$home:/bin/sh" >>/etc/passwd
grep -q "^$user:" /etc/group || echo "$user:x:1000:" >>/etc/group
mkdir -p "$home"

# The disk's node appears when virtio_blk has probed it (10-device-modules).
dev=
i=0
while [ $i -lt 100 ]; do
	for serial in /sys/block/vd*/serial; do
		[ -r "$serial" ] || continue
		read -r s <"$serial"
		if [ "$s" = pocketvm-home ]; then
			dev=${serial%/serial}
			dev=/dev/${dev##*/}
		fi
	done
	[ -n "$dev" ] && [ -b "$dev" ] && break
	dev=
	i=$((i + 1))
	sleep 0.02
done
if [ -z "$dev" ]; then
	log "no personal disk attached; $home is not persistent"
	chown 1000:1000 "$home"
	exit 0
fi

# A disk without an ext4 superblock is formatted only if it is blank, so a
# disk holding something else is never overwritten.
if ! /sbin/tune2fs -l "$dev" >/dev/null 2>&1; then
	if cmp -s -n 1048576 "$dev" /dev/zero; then
		log "formatting the personal disk (first boot)"
		/sbin/mke2fs -t ext4 -q -F -L pocket-home -m 0 "$dev" || { log "mke2fs $dev failed"; exit 1; }
		: >/run/pocketvm/home-formatted
	else
		log "the personal disk $dev holds no ext4 file system and is not blank; not mounting it"
		exit 1
	fi
fi
mount -t ext4 -o noatime "$dev" "$home" || { log "mounting $dev on $home failed"; exit 1; }
chown 1000:1000 "$home"
chmod 0700 "$home"
echo "$home" >/run/pocketvm/home-mounted
exit 0
