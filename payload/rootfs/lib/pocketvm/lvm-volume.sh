# Sourced by boot.d/45-image-system.sh: where an LVM logical volume lies on
# a disk, read from the LVM2 metadata itself, so a catalog image whose root
# is on LVM (Debian's installer's "guided, use LVM") starts without lvm2 and
# device-mapper in every guest's initramfs (docs/guests.md, "Guests from
# catalog images"). Only what a loop device over the physical volume can
# show is accepted: a linear volume in ONE segment (one contiguous extent
# range of one PV on this disk), the layout of a volume made at install and
# never extended. Anything else (more segments, striped, mirrored, RAID,
# thin, cache, a volume with a snapshot, a group spanning other disks) is
# refused with a reason: mapping it needs device-mapper.
#
#   lvm_volume VG LV DEV... prints "DEVICE OFFSET BYTES": which DEV (the
#                           image disk's partitions) holds the volume, the
#                           byte offset of its first extent there, its size.
#
# On-disk format (LVM2 "text" format, as lvm2's format_text/layout.h says):
# a label "LABELONE" in one of the first four sectors; at its offset_xl the
# PV header (its uuid, then lists of data and metadata areas, each ended by a
# zero entry); at the metadata area's start the mda header, whose first
# raw_locn says where (in the area's circular buffer) the current metadata
# text is.

# u64/u32 little-endian at byte OFFSET of DEV.
lvm_u64() { od -An -tu8 -j "$2" -N 8 "$1" | tr -d ' '; }
lvm_u32() { od -An -tu4 -j "$2" -N 4 "$1" | tr -d ' '; }

# DEV: "PVUUID TEXT_FILE" when DEV is an LVM2 physical volume whose metadata
# could be read (the text copied to TEXT_FILE), nothing otherwise.
lvm_pv_metadata() {
	local dev=$1 out=$2 s label at uuid mda size start off len first
	for s in 0 1 2 3; do
		label=$(dd if="$dev" bs=512 skip=$s count=1 2>/dev/null | head -c 32 | tr -d '\0')
		case $label in LABELONE*"LVM2 001"*) break ;; esac
		label=
	done
	[ -n "$label" ] || return 1
	at=$((s * 512 + $(lvm_u32 "$dev" $((s * 512 + 20)))))
	uuid=$(dd if="$dev" bs=1 skip=$at count=32 2>/dev/null)
	# The data areas' list, then the metadata areas': entries of 16 bytes, each list ended by a zero offset.
	at=$((at + 40))
	while [ "$(lvm_u64 "$dev" $at)" != 0 ]; do at=$((at + 16)); done
	at=$((at + 16))
	mda=$(lvm_u64 "$dev" $at)
	[ "$mda" != 0 ] || return 1
	[ "$(dd if="$dev" bs=1 skip=$((mda + 4)) count=16 2>/dev/null)" = ' LVM2 x[5A%r0N*>' ] || return 1
	size=$(lvm_u64 "$dev" $((mda + 32)))
	off=$(lvm_u64 "$dev" $((mda + 40)))
	len=$(lvm_u64 "$dev" $((mda + 48)))
	# flags bit 0: this copy is ignored (metadataignore); another PV holds it.
	[ "$off" != 0 ] && [ $(($(lvm_u32 "$dev" $((mda + 60))) & 1)) = 0 ] || return 1
	start=$((mda + off))
	if [ $((off + len)) -le "$size" ]; then
		head -c $((start + len)) "$dev" | tail -c "$len" >"$out"
	else
		# Wrapped round the circular buffer: the rest follows the 512-byte header.
		first=$((size - off))
		{
			head -c $((start + first)) "$dev" | tail -c "$first"
			head -c $((mda + 512 + len - first)) "$dev" | tail -c $((len - first))
		} >"$out"
	fi
	echo "$uuid"
}

# The metadata text's facts about the volume LV, one a line:
#   vg NAME                     the volume group
#   extent SECTORS              its extent size
#   pv NAME UUID PE_START       each physical volume (UUID without dashes, as the label has it)
#   lv SEGMENTS                 LV is in the group, in SEGMENTS segments
#   seg START COUNT TYPE STRIPES PV PV_EXTENT   each of LV's segments
#   snapshot                    another volume is a snapshot of LV (its writes go through it)
lvm_facts() { # TEXT_FILE LV
	awk -v want="$2" '
		{ sub(/#.*/, "") }
		# A value in brackets can span lines (stripes = [ "pv0", 0 ]): joined first.
		pending != "" { pending = pending " " $0; if ($0 !~ /\]/) next; $0 = pending; pending = "" }
		/=[ \t]*\[/ && !/\]/ { pending = $0; next }
		/\{[ \t]*$/ {
			depth++; path[depth] = $1
			if (depth == 1) print "vg " $1
			if (depth == 4) { start = count = type = stripes = list = "" }
			next
		}
		/^[ \t]*\}/ {
			if (depth == 3 && path[2] == "physical_volumes") print "pv " path[3] " " pvid " " pestart
			if (depth == 4 && path[2] == "logical_volumes" && path[3] == want) {
				n = split(list, s, ",")
				print "seg " start " " count " " type " " stripes " " (n == 2 ? s[1] " " s[2] : "- -")
			}
			depth--
			next
		}
		/=/ {
			key = $1; val = $0; sub(/^[^=]*=/, "", val); gsub(/"/, "", val); gsub(/[ \t]/, "", val); gsub(/\[/, "", val); gsub(/\]/, "", val)
			if (depth == 1 && key == "extent_size") print "extent " val
			if (depth == 3 && path[2] == "physical_volumes" && key == "id") { pvid = val; gsub(/-/, "", pvid) }
			if (depth == 3 && path[2] == "physical_volumes" && key == "pe_start") pestart = val
			if (depth == 3 && path[2] == "logical_volumes" && path[3] == want && key == "segment_count") print "lv " val
			if (depth == 4 && path[2] == "logical_volumes") {
				if (key == "start_extent") start = val
				if (key == "extent_count") count = val
				if (key == "type") type = val
				if (key == "stripe_count") stripes = val
				if (key == "stripes") list = val
				if (key == "origin" && val == want) print "snapshot"
			}
		}
	' "$1"
}

# VG LV DEV... -> "DEVICE OFFSET BYTES", or a reason on stderr and status 1.
lvm_volume() {
	local vg=$1 lv=$2 text dev uuid facts found= pvs= extent n p seg_count seg_pv seg_at
	shift 2
	text=$(mktemp) || return 1
	for dev in "$@"; do
		uuid=$(lvm_pv_metadata "$dev" "$text") || continue
		pvs="$pvs $uuid:$dev"
		[ -n "$found" ] && continue
		facts=$(lvm_facts "$text" "$lv")
		[ "$(echo "$facts" | sed -n 's/^vg //p')" = "$vg" ] && found=$facts
	done
	rm -f "$text"
	[ -n "$found" ] || { echo "no volume group $vg on the disk" >&2; return 1; }
	n=$(echo "$found" | sed -n 's/^lv //p')
	[ -n "$n" ] || { echo "no logical volume $lv in $vg" >&2; return 1; }
	echo "$found" | grep -q '^snapshot$' && { echo "$vg/$lv has a snapshot: writing it needs device-mapper" >&2; return 1; }
	[ "$n" = 1 ] || { echo "$vg/$lv is in $n segments: only a volume in one segment is mapped without device-mapper" >&2; return 1; }
	extent=$(echo "$found" | sed -n 's/^extent //p')
	set -- $(echo "$found" | sed -n 's/^seg //p')
	# seg START COUNT TYPE STRIPES PV PV_EXTENT: one linear stripe ("striped" with one stripe is lvm's linear).
	[ "$3" = striped ] || { echo "$vg/$lv is $3: only a linear volume is mapped without device-mapper" >&2; return 1; }
	[ "$4" = 1 ] || { echo "$vg/$lv is striped ($4 stripes): only a linear volume is mapped without device-mapper" >&2; return 1; }
	seg_count=$2
	seg_pv=$5
	seg_at=$6
	set -- $(echo "$found" | sed -n "s/^pv $seg_pv //p")
	dev=
	for p in $pvs; do [ "${p%%:*}" = "$1" ] && dev=${p#*:}; done
	[ -n "$dev" ] || { echo "$vg/$lv is on a physical volume that is not on the disk" >&2; return 1; }
	echo "$dev $((($2 + seg_at * extent) * 512)) $((seg_count * extent * 512))"
}
