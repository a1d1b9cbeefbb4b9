# After a resume (README, "Suspend and resume"): the guest's /host mount and
# its relay belong to the launcher that suspended it; this launcher's 9P
# server knows none of their fids. Stop the old relay first (so the detaching
# mount's clunks go nowhere), let go of the old mount, and mount afresh with
# the boot step. Run by the launcher through the agent, as root.
. /lib/pocketvm/lib.sh
[ -r /run/pocketvm/namespace-mounted ] || exit 0
read -r mnt </run/pocketvm/namespace-mounted
port=$(readlink -f /dev/virtio-ports/org.pocketvm.9p.0) || exit 1
# The relay's two cat processes are the ones holding the port open.
for fd in /proc/[0-9]*/fd/*; do
	[ "$(readlink "$fd" 2>/dev/null)" = "$port" ] || continue
	pid=${fd#/proc/}
	kill -KILL "${pid%%/*}" 2>/dev/null
done
umount -l "$mnt" 2>/dev/null
rm -f /run/pocketvm/namespace-mounted
exec /bin/sh /etc/pocketvm/boot.d/40-namespace.sh
