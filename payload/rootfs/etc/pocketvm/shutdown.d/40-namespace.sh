# Unmount the namespace before init stops everything: the 9P client clunks
# its fids and the launcher's server sees an orderly end. Writes already
# reached the stick (no write cache).
[ -r /run/pocketvm/namespace-mounted ] || exit 0
read -r mnt </run/pocketvm/namespace-mounted
# Bounded: a server that stopped answering must not hold the shutdown up.
timeout -s KILL 10 umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
exit 0
