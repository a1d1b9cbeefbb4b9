# The dyntable namespace is served over 9P; its modules load only when the
# launcher says it will attach one (pocketvm.9p on the kernel command line).
. /lib/pocketvm/lib.sh
cmdline_has pocketvm.9p && load_modules 9p
exit 0
