# A POSIX workload for test/integration/namespace.test.ts, run by busybox sh
# in the guest: once in a folder of the 9P namespace (/host/...), once on the
# guest's own tmpfs. Its output describes what the file system did, in terms
# that do not depend on which file system it is (no inode numbers, no
# timestamps, no directory sizes or block counts), so the two outputs must be
# identical. Usage: sh namespace-workload.sh DIR (DIR must not exist yet).
set -e
base=$1
mkdir "$base"
cd "$base"

say() { echo "== $*"; }

say create
echo hello >a
printf 'line %s\n' 1 2 3 4 5 6 7 8 9 10 >lines
# Binary content that is the same on every run (gzip of stdin stores no name or time).
seq 1 40000 | gzip -c >numbers.bin
mkdir -p tree/d1/d2/d3
echo deep >tree/d1/d2/d3/leaf
echo top >tree/top
: >tree/empty
chmod 0640 lines
chmod 0755 tree/d1
chmod 0700 tree/d1/d2

say rename
mv a a.renamed
mv tree/d1/d2 tree/d1/d2.moved
echo replaced >victim
echo winner >winner
mv winner victim
cat victim
mkdir -p emptydir
mv emptydir emptydir.renamed
[ ! -e a ] && echo "a is gone"

say unlink
echo bye >doomed
rm doomed
[ ! -e doomed ] && echo "doomed is gone"
echo still-open >open-then-unlinked
exec 3<open-then-unlinked
rm open-then-unlinked
cat <&3
exec 3<&-
rmdir emptydir.renamed
rm -f not-there && echo "rm -f of a missing file: ok"

say symlink
ln -s a.renamed sym
ln -s ../../a.renamed tree/d1/up
ln -s /etc/os-release absolute
ln -s dangling-target dangling
readlink sym
readlink tree/d1/up
readlink absolute
readlink dangling
cat sym
cat tree/d1/up
[ -L dangling ] && [ ! -e dangling ] && echo "dangling is a link to nothing"

say hardlink
ln a.renamed hard
stat -c '%h %s' a.renamed hard
echo more >>hard
cat a.renamed
rm a.renamed
stat -c '%h' hard
cat hard

say truncate
echo 0123456789abcdef >cut
truncate -s 4 cut
cat cut; echo
truncate -s 10000 cut
stat -c '%s' cut
dd if=cut bs=1 skip=4 count=16 2>/dev/null | od -An -c
truncate -s 0 cut
stat -c '%s' cut

say sparse
dd if=/dev/zero of=sparse bs=1 count=0 seek=1073741823 2>/dev/null
printf 'E' >>sparse
printf 'S' | dd of=sparse bs=1 seek=0 conv=notrunc 2>/dev/null
printf 'M' | dd of=sparse bs=1 seek=536870912 conv=notrunc 2>/dev/null
stat -c '%s' sparse
dd if=sparse bs=1 count=1 2>/dev/null; echo
dd if=sparse bs=1 skip=536870912 count=1 2>/dev/null; echo
dd if=sparse bs=1 skip=1073741823 count=1 2>/dev/null; echo
dd if=sparse bs=1M skip=1023 count=1 2>/dev/null | sha256sum | cut -d' ' -f1
dd if=sparse bs=1M skip=512 count=1 2>/dev/null | sha256sum | cut -d' ' -f1
# Allocated space: only a few blocks, on any file system that keeps holes.
blocks=$(stat -c '%b' sparse)
[ "$blocks" -lt 2048 ] && echo "sparse: holes kept"
rm sparse

say cp-a
cp -a tree tree.copy
a=$(stat -c '%Y %a' tree/d1/d2.moved/d3/leaf)
b=$(stat -c '%Y %a' tree.copy/d1/d2.moved/d3/leaf)
[ "$a" = "$b" ] && echo "cp -a kept mtime and mode"
readlink tree.copy/d1/up
cp -a numbers.bin numbers.copy
cmp numbers.bin numbers.copy && echo "copy is identical"

say find
find . | sort
find . -type f | sort | while read -r f; do stat -c '%n %s %a %h' "$f"; done
find . -type d | sort | while read -r d; do stat -c '%n %a' "$d"; done
find . -type l | sort | while read -r l; do echo "$l -> $(readlink "$l")"; done
find . -name '*.bin' | sort

say sha256sum
find . -type f | sort | xargs sha256sum
find . -type f | sort | xargs sha256sum >../sums.$$
sha256sum -c ../sums.$$ | grep -c ': OK$'
rm ../sums.$$

say rm-r
rm -r tree.copy
[ ! -e tree.copy ] && echo "tree.copy is gone"
ls
say done
