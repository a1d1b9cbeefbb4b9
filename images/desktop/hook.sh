#!/bin/sh
# The desktop image's hook (images/desktop/recipe.json; build/image/tree.ts
# runs it as `hook.sh TREE` from images/desktop/, as root, after the Debian
# system, the payload's parts and rootfs/ are in place). It adds what
# packages cannot: the payload kernel's modules for the graphics, input and
# USB devices of a desktop, the services' wiring, the font cache, and it
# drops what a desktop never reads (manuals, docs but their copyright).
set -eu
tree=$1
repo=$(cd ../.. && pwd)

# The payload's kernel (its initramfs put lib/modules/<version> in the tree:
# the modules it boots with and 9pnet_pocketvm). The rest of that kernel's
# modules come from its unpacked package in the payload build's cache, minus
# modules-exclude.txt.
version=$(ls "$tree/lib/modules")
[ "$(echo "$version" | wc -l)" = 1 ] || { echo "hook.sh: expected one kernel in lib/modules, found: $version" >&2; exit 1; }
package=
for dir in "$repo"/.cache/payload/debs/linux-image-"$version"_*; do
	[ -d "$dir/lib/modules/$version" ] && package=$dir
done
[ -n "$package" ] || { echo "hook.sh: the unpacked linux-image-$version is not in .cache/payload/debs (node build.js payload --force)" >&2; exit 1; }
modules=$tree/lib/modules/$version
mv "$modules/extra" "$tree/extra.pocketvm"
rm -rf "$modules"
cp -a "$package/lib/modules/$version" "$modules"
mv "$tree/extra.pocketvm" "$modules/extra"
grep -v '^#' modules-exclude.txt | while IFS= read -r dir; do
	[ -n "$dir" ] && rm -rf "${modules:?}/$dir"
done
chroot "$tree" depmod -a "$version"

# The payload's reg (usr/bin/reg) is written for busybox: its ash ($'\t',
# ${var//x/y}; here /bin/sh is dash, so it runs under bash) and its awk,
# which takes the reply lines from the port as they come (Debian's mawk
# waits to fill its buffer unless told -W interactive, and the port never
# ends). A reg that no longer has these lines fails the build here.
grep -q '^#!/bin/sh$' "$tree/usr/bin/reg" && grep -q '^awk -v id=' "$tree/usr/bin/reg" || {
	echo "hook.sh: usr/bin/reg changed; see the comment above its patch" >&2
	exit 1
}
sed -i -e '1s|^#!/bin/sh$|#!/bin/bash|' -e 's|^awk -v id=|mawk -W interactive -v id=|' "$tree/usr/bin/reg"

# Manuals and documentation nobody reads on this desktop (licences stay).
rm -rf "$tree/usr/share/man" "$tree/usr/share/info"
find "$tree/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$tree/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true

# The font cache once here, not by the first program of every boot.
chroot "$tree" fc-cache -s -f

# The system: a read-only base shared by every user's overlay.
echo pocketvm >"$tree/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tpocketvm\n' >"$tree/etc/hosts"
ln -sf /usr/share/zoneinfo/Etc/UTC "$tree/etc/localtime"
echo Etc/UTC >"$tree/etc/timezone"
echo LANG=C.UTF-8 >"$tree/etc/default/locale"
# Empty: systemd makes a machine id per boot (every user's overlay starts from this base).
: >"$tree/etc/machine-id"
# / is mounted by the payload's initramfs (pocketvm.root); nothing else to mount.
echo '# / is the system disk, mounted read-write by the initramfs (docs/images.md).' >"$tree/etc/fstab"
# The network step's DHCP client is the payload's busybox udhcpc (copied in
# as bin/busybox by payloadTree): Debian's DHCP clients are larger and bring
# their own configuration; this one runs the payload's event script.
[ -x "$tree/usr/bin/busybox" ] || { echo "hook.sh: the payload's busybox is missing (payloadTree)" >&2; exit 1; }
ln -sf /usr/bin/busybox "$tree/usr/sbin/udhcpc"
chroot "$tree" systemctl enable pocketvm-network.service pocketvm-setup.service pocketvm-desktop.service pocketvm-execd.service pocketvm-namespace.service pocketvm-user.service
# No login prompts (the person is logged in by pocketvm-desktop), no timers
# that download or scrub under TCG.
chroot "$tree" systemctl mask getty@tty1.service serial-getty@ttyS0.service apt-daily.timer apt-daily-upgrade.timer \
	dpkg-db-backup.timer e2scrub_all.timer fstrim.timer
chroot "$tree" systemctl set-default multi-user.target
rm -rf "$tree/var/cache/apt/archives/"*.deb "$tree/var/lib/apt/lists/"* 2>/dev/null || true
