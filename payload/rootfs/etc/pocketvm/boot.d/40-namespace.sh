# The dyntable namespace (README, "The namespace in the guest"): host files
# chosen by the FIT/FET rules, served by the launcher's 9P2000.L server on the
# virtio port org.pocketvm.9p.0 and mounted on /host when the command line has
# pocketvm.9p (20-9p-modules.sh has loaded 9p and 9pnet_fd by then).
#
# Why a relay: 9pnet_fd reads and writes its descriptors with kernel_read and
# kernel_write, which need read_iter/write_iter, and the virtio-console port
# has neither ("kernel write not supported for file /vportNpM"). So two cat
# processes copy between the port and two FIFOs, and the kernel's 9P client
# reads one FIFO and writes the other. Each FIFO end is opened one-way (< and
# >): a pipe opened read-write registers two wait queues, and 9pnet_fd has
# only two slots for both descriptors, so a read-write pair loses the "room
# to write again" wake-up and a message larger than the pipe hangs forever.
. /lib/pocketvm/lib.sh
cmdline_has pocketvm.9p || exit 0

mnt=/host
port=/dev/virtio-ports/org.pocketvm.9p.0
wait_for_port org.pocketvm.9p.0 || {
	log "no 9P port $port: $mnt is not mounted"
	exit 1
}

fifo_in=/run/pocketvm/9p.in
fifo_out=/run/pocketvm/9p.out
rm -f "$fifo_in" "$fifo_out"
mkfifo -m 0600 "$fifo_in" "$fifo_out" || exit 1
# One process opens the port (a port takes one opener at a time): from the
# host to the kernel through $fifo_in, back through $fifo_out. setsid keeps
# the relay out of this step's session; the OOM killer must never pick it
# (a lost byte wedges the mount). Its pid is kept for the shutdown step.
setsid sh -c '
	echo -1000 >/proc/self/oom_score_adj
	cat <&3 >'"$fifo_in"' &
	exec cat <'"$fifo_out"' >&3
' 3<>"$port" </dev/null >/dev/null 2>&1 &

mkdir -p "$mnt"
# Options (README explains each):
#  msize=524288   the server's cap (512 KiB): the fewest round trips per MiB
#  cache=mmap     no page or attribute cache (every read sees the host's file as it
#                 is now; writes land on the stick at once), but shared writable mmap
#                 works for programs that need it
#  nosuid,nodev   host files never grant privileges or reach devices in the guest
# The FIFO opens block until the relay has its ends open; the kill-timeout keeps a
# relay that never came up (or a silent server) from hanging boot.
opts=trans=fd,rfdno=3,wfdno=4,version=9p2000.L,msize=524288,cache=mmap,noatime,nosuid,nodev
if ! timeout -s KILL 60 sh -c 'exec mount -t 9p -o "$1" pocketvm "$2" 3<"$3" 4>"$4"' mount "$opts" "$mnt" "$fifo_in" "$fifo_out"; then
	log "mounting the namespace on $mnt failed"
	exit 1
fi
echo "$mnt" >/run/pocketvm/namespace-mounted
trace "namespace mounted on $mnt"
exit 0
