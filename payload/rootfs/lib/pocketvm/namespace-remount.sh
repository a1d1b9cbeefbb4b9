# After a resume (docs/unplug-and-suspend.md, "Suspend and resume"): the guest's /host mount
# belongs to the launcher that suspended it; this launcher's 9P server never
# saw it begin and answers it ESTALE. Let go of it and mount afresh with the
# boot step: the new mount has a new connection id, so the two never mix.
# Run by the launcher through the agent, as root.
. /lib/pocketvm/lib.sh
[ -r /run/pocketvm/namespace-mounted ] || exit 0
read -r mnt </run/pocketvm/namespace-mounted
umount -l "$mnt" 2>/dev/null
rm -f /run/pocketvm/namespace-mounted
exec /bin/sh /etc/pocketvm/boot.d/40-namespace.sh
