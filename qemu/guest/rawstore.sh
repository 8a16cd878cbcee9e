#!/bin/sh
# rawstore.sh RESULTS: the raw store's scenarios in a QEMU guest (tests/qemu/
# test_rawstore_guests.py puts it on the job disk as run.sh). busybox sh.
#
# The store is the virtio disk with serial "mcdstore" (a raw image on the host, kept
# between boots), or with "eeprom": 1 in job.json an I2C EEPROM (QEMU's at24c-eeprom on
# the eeprom machine of qemu/guests.py, also backed by an image): the versatile I2C
# controller's and at24's modules loaded, the EEPROM made known to Linux through the
# bus's new_device, its nvmem file the store; with "nor": 1 the CFI NOR flash (QEMU's
# pflash, backed by an image; the drivers of /etc/mcd-guest/nor-modules), its /dev/mtdN
# the store; with "nand": 1 the simulated NAND flash (nandsim, its bad blocks from
# "nand_badblocks", failing erases from "nand_weakblocks", failing page writes from
# "nand_weakpages"). On MTD the slot is the erase block, "slots" of them.
# job.json's "phase" says what to do:
#   crash   crash crash3, threads8 and mycrasher (or "programs") into the store (the
#           embedded recept, the slot being the budget); the NAND flash as the store
#           is then listed and imported (it lives in RAM); with the virtio disk as the
#           store and a NAND flash simulated (nandsim, where the image has it): the
#           same three crashes into the NAND, read back with mcd and imported
#   loop    crash crash3 into the store again and again, a line on the console before
#           each ("mcd-rawstore: crash N"), until the host kills QEMU (the power cut)
#   import  mcd store import from the store into base_dir, after `mcd list --store`
#   bench   write "bench_count" records of "bench_bytes" random bytes into the store
#           (and with the virtio disk as the store into the NAND flash), each timed
# Results: store.txt (the device, what happened), crashes.txt, imported/<dump dirs>,
# list.txt and list.err (mcd list --store), import.txt, mtd/ (the NAND scenario),
# geometry.txt (an MTD store's), small-slot.err (mcd on it with 4 KiB slots), bench.txt ("DEVICE KIND SLOT SEQUENCE MS" a write).

R=$1
ETC=/etc/minicoredumper
PATTERN="|/usr/sbin/minicoredumper %P %u %g %s %t %h %e"
BIN=/usr/lib/minicoredumper/ptest/bin
CFG=$ETC/store.cfg.json
cp /job/job.json "$R/job.json"

field() {
	sed -n "s/.*\"$1\": *\"\{0,1\}\([^,\"}]*\).*/\1/p" /job/job.json
}
phase=$(field phase)
slot=$(field slot_size)
count=$(field crashes)
deadline=$(field deadline)
programs=$(field programs)
slots=$(field slots)

say() {
	echo "mcd-rawstore: $*" >/dev/console
	echo "$*" >>"$R/store.txt"
}

# The raw store's modules (the image's /etc/mcd-guest/store-modules): nandsim with a 16
# MiB ST NAND128W3A (512-byte pages, 16 KiB erase blocks); with "nor": 1 the NOR flash
# drivers (/etc/mcd-guest/nor-modules).
mkdir -p "$R/modules"
nandargs=id_bytes=0x20,0x33
for p in badblocks weakblocks weakpages; do
	v=$(field "nand_$p")
	[ -n "$v" ] && nandargs="$nandargs $p=$v"
done
lists=/etc/mcd-guest/store-modules
[ "$(field nor)" = 1 ] && lists="$lists /etc/mcd-guest/nor-modules"
# shellcheck disable=SC2086 # lists: words
cat $lists 2>/dev/null | while read -r ko; do
	case $ko in
	*nandsim*) args=$nandargs ;;
	*) args= ;;
	esac
	# shellcheck disable=SC2086 # args: words
	insmod "/usr/lib/modules/$(uname -r)/$ko" $args >>"$R/modules/insmod.txt" 2>&1 ||
		echo "insmod $ko failed" >>"$R/modules/insmod.txt"
done

# mtd TYPE: the /dev/mtdN of the first MTD device of that type (nand, nor), if any.
mtd() {
	for m in /sys/class/mtd/mtd*; do
		[ -e "$m/type" ] && [ "$(cat "$m/type")" = "$1" ] && {
			echo "/dev/${m##*/}"
			return
		}
	done
}

# geometry DEVICE: the MTD's sysfs attributes, name=value a line.
geometry() {
	for f in type size erasesize writesize oobsize bad_blocks; do
		echo "$f=$(cat "/sys/class/mtd/${1#/dev/}/$f" 2>/dev/null)"
	done
}

store=''
if [ "$(field eeprom)" = 1 ]; then
	model=$(field eeprom_model) address=$(field eeprom_address)
	for a in /sys/bus/i2c/devices/i2c-*; do
		# the controller of the eeprom machine: versatile I2C at 0x1c160000
		case $(readlink "$a/device" 2>/dev/null) in
		*1c160000.i2c*) echo "$model $address" >"$a/new_device" ;;
		esac
	done
	n=0
	while [ -z "$store" ] && [ $n -lt 200 ]; do
		for f in /sys/bus/nvmem/devices/*-00"${address#0x}"*/nvmem; do
			[ -e "$f" ] && store=$f
		done
		n=$((n + 1))
		sleep 0.05
	done
	{
		ls -l /sys/bus/i2c/devices/
		ls -l /sys/bus/nvmem/devices/
	} >"$R/modules/i2c.txt" 2>&1
elif [ "$(field nor)" = 1 ]; then
	store=$(mtd nor)
elif [ "$(field nand)" = 1 ]; then
	store=$(mtd nand)
else
	for b in /sys/block/vd*; do
		[ "$(cat "$b/serial" 2>/dev/null)" = mcdstore ] && store=/dev/${b##*/}
	done
fi
[ -n "$store" ] || {
	say "no store"
	exit 1
}
say "store=$store phase=$phase"
case $store in
/dev/mtd*)
	slot=0 # the erase block
	geometry "$store" >"$R/geometry.txt"
	cat /proc/mtd >"$R/proc-mtd.txt"
	# a slot smaller than the erase block is refused
	mcd list --store "$store" --slot-size 4096 >/dev/null 2>"$R/small-slot.err"
	;;
esac

# The embedded recept as installed, without its own size cap: the slot is the budget.
sed -e 's/"max_dump_size": *[0-9]*/"max_dump_size": 0/' "$ETC/embedded.recept.json" \
	>"$ETC/store.recept.json"

# config DEVICE SLOT BASE [SLOTS]: the main config of a raw store on DEVICE.
config() {
	cat >"$CFG" <<EOF
{"base_dir": "$3", "watch": [{"recept": "store.recept.json"}], "deadline_seconds": ${deadline:-3},
 "store": {"device": "$1", "slot_size": $2, "slots": ${4:-0}}}
EOF
}

dumped() {
	dmesg | grep -c "dumped .* to $1 slot"
}

# crash DEVICE NAME COMMAND...: run it, wait (at most 60 s) for the handler's log line.
crash() {
	dev=$1 name=$2
	shift 2
	before=$(dumped "$dev")
	"$@" >/dev/null 2>&1
	rc=$?
	n=0
	while [ "$(dumped "$dev")" -le "$before" ] && [ $n -lt 3000 ]; do
		n=$((n + 1))
		sleep 0.02
	done
	echo "$dev $name rc=$rc dumped=$(($(dumped "$dev") - before))" >>"$R/crashes.txt"
}

# bench DEVICE SLOT SLOTS: bench_count timed writes of bench_bytes random bytes.
bench() {
	python3 - "$@" "$(field bench_bytes)" "$(field bench_count)" <<'EOF' >>"$R/bench.txt"
import os, sys, time
sys.path.append("/usr/lib/python3.11/site-packages")
from minicoredumper.rawstore import Store
device, (slot_size, slots, size, count) = sys.argv[1], map(int, sys.argv[2:])
payload = os.urandom(size)
for _ in range(count):
    with Store(device, slot_size, slots, write=True) as s:
        kind = ("nand" if s.bad_blocks else "nor") if s.mtd else \
            "eeprom" if device.startswith("/sys/") else "disk"
        t = time.monotonic()
        index, seq = s.write(payload)
        ms = (time.monotonic() - t) * 1000
    print("%s %s %d %d %.1f" % (device, kind, index, seq, ms))
EOF
}

case $phase in
crash)
	config "$store" "$slot" /var/crash/store "$slots"
	echo "$PATTERN $CFG" >/proc/sys/kernel/core_pattern
	for p in ${programs:-crash3 threads8 mycrasher}; do
		crash "$store" "$p" "$BIN/$p"
	done
	case $store in /dev/mtd*) geometry "$store" >"$R/geometry-after.txt" ;; esac
	if [ "$(field nand)" = 1 ]; then # nandsim lives in RAM: read it in this boot
		mcd list --config "$CFG" --store "$store" -F name >"$R/list.txt" 2>"$R/list.err"
		mcd store import --config "$CFG" >"$R/import.txt" 2>&1
		echo "rc=$?" >>"$R/import.txt"
		cp -r /var/crash/store "$R/imported"
	fi
	# A NAND flash (nandsim, above) beside the disk: slots of one erase block.
	nand=$(mtd nand)
	if [ "${store#/dev/vd}" != "$store" ] && [ -n "$nand" ]; then
		mkdir -p "$R/mtd"
		cat /proc/mtd >"$R/mtd/proc-mtd.txt" 2>&1
		geometry "$nand" >"$R/mtd/geometry.txt"
		config "$nand" 0 /var/crash/mtd 3
		echo "$PATTERN $CFG" >/proc/sys/kernel/core_pattern
		# four crashes into three slots: the ring wraps over erased blocks
		for p in crash3 threads8 crash3 mycrasher; do
			crash "$nand" "$p" "$BIN/$p"
		done
		mcd list --config "$CFG" --store "$nand" -F name >"$R/mtd/list.txt" \
			2>"$R/mtd/list.err"
		mcd store import --config "$CFG" >"$R/mtd/import.txt" 2>&1
		echo "rc=$?" >>"$R/mtd/import.txt"
		cp -r /var/crash/mtd "$R/mtd/imported"
	fi
	;;
loop)
	config "$store" "$slot" /var/crash/store "$slots"
	echo "$PATTERN $CFG" >/proc/sys/kernel/core_pattern
	i=0
	while [ "$i" -lt "${count:-1000}" ]; do
		i=$((i + 1))
		say "crash $i"
		crash "$store" crash3 "$BIN/crash3"
	done
	;;
import)
	config "$store" "$slot" /var/crash/store "$slots"
	mcd list --config "$CFG" --store "$store" -F name >"$R/list.txt" 2>"$R/list.err"
	mcd store import --config "$CFG" >"$R/import.txt" 2>&1
	echo "rc=$?" >>"$R/import.txt"
	cp -r /var/crash/store "$R/imported"
	;;
bench)
	bench "$store" "$slot" "${slots:-0}"
	nand=$(mtd nand)
	[ "${store#/dev/vd}" != "$store" ] && [ -n "$nand" ] && bench "$nand" 0 4
	;;
esac
echo "$PATTERN" >/proc/sys/kernel/core_pattern
say "done"
