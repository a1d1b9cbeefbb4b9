# Unmount the personal disk before services stop (init's final `umount -a -r`
# catches it if something still holds it open): every write reaches the disk.
[ -r /run/pocketvm/home-mounted ] || exit 0
read -r home </run/pocketvm/home-mounted
sync
umount "$home" 2>/dev/null || mount -o remount,ro "$home" 2>/dev/null
exit 0
