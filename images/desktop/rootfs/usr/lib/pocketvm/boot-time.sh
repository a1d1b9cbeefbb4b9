# Sourced by the desktop's boot scripts: boot_time WHAT appends "UPTIME WHAT"
# to /run/pocketvm/boot-times, readable by the person (`launcher exec -- cat
# /run/pocketvm/boot-times`), so where the boot's time goes can be read
# without root (docs/console-page.md, "Benchmark"). Builtins only: no fork.
boot_time() {
	local up _
	read -r up _ </proc/uptime
	echo "$up $*" >>/run/pocketvm/boot-times
}
