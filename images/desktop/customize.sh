#!/bin/sh
# mmdebstrap's customize hook for the desktop image (build/desktop-image.ts
# runs it outside the chroot with the tree as $1 and these variables set):
#   DESKTOP_ROOTFS       images/desktop/rootfs (copied over the tree)
#   PAYLOAD_ROOTFS       payload/rootfs (lib.sh, reg, the namespace mount)
#   EXECD                the payload's static pocketvm-execd
#   KERNEL_TREE          the payload kernel's unpacked package
#   KERNEL_VERSION       its version (6.1.0-…-amd64)
#   KMOD                 the payload's 9pnet_pocketvm.ko for that kernel
#   MODULES_EXCLUDE      module folders to leave out, one a line
#   DESKTOP_CONF         /etc/pocketvm/desktop.conf's text
#   ENABLE               systemd units to enable, space-separated
set -eu
root=$1

cp -a "$DESKTOP_ROOTFS"/. "$root"/
mkdir -p "$root/lib/pocketvm" "$root/usr/lib/pocketvm" "$root/etc/pocketvm"
cp "$PAYLOAD_ROOTFS/lib/pocketvm/lib.sh" "$root/lib/pocketvm/lib.sh"
cp "$PAYLOAD_ROOTFS/usr/bin/reg" "$root/usr/bin/reg"
cp "$PAYLOAD_ROOTFS/etc/pocketvm/boot.d/40-namespace.sh" "$root/usr/lib/pocketvm/namespace.sh"
install -m 0755 "$EXECD" "$root/usr/lib/pocketvm/pocketvm-execd"
printf '%s' "$DESKTOP_CONF" >"$root/etc/pocketvm/desktop.conf"

# The payload kernel's modules, without hardware a QEMU guest never has.
modules=$root/lib/modules/$KERNEL_VERSION
rm -rf "$modules"
mkdir -p "$root/lib/modules"
cp -a "$KERNEL_TREE/lib/modules/$KERNEL_VERSION" "$modules"
printf '%s\n' "$MODULES_EXCLUDE" | while IFS= read -r dir; do
	[ -n "$dir" ] && rm -rf "${modules:?}/$dir"
done
mkdir -p "$modules/extra"
cp "$KMOD" "$modules/extra/"
cp "$KERNEL_TREE/boot/config-$KERNEL_VERSION" "$root/boot/" 2>/dev/null || true
chroot "$root" depmod -a "$KERNEL_VERSION"
chroot "$root" mkinitramfs -o "/boot/initrd.img-$KERNEL_VERSION" "$KERNEL_VERSION"

# The font cache, once here rather than by the first program of every boot
# (the base is read-only under the overlay; fontconfig would redo it).
chroot "$root" fc-cache -s -f

# The system.
echo pocketvm >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tpocketvm\n' >"$root/etc/hosts"
ln -sf /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"
echo Etc/UTC >"$root/etc/timezone"
echo LANG=C.UTF-8 >"$root/etc/default/locale"
# A machine id of its own per boot (the base is read-only and shared).
: >"$root/etc/machine-id"
chroot "$root" systemctl enable $ENABLE
# Nothing waits for a network or a login on tty1 (the console is the serial
# line, where systemd still starts a getty for root-less debugging: none).
chroot "$root" systemctl mask getty@tty1.service serial-getty@ttyS0.service systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer 2>/dev/null || true
chroot "$root" systemctl set-default multi-user.target
printf 'LABEL=pocketvm-desktop\t/\text4\tdefaults,noatime\t0\t1\n' >"$root/etc/fstab"
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"* 2>/dev/null || true
