#!/bin/sh
# run.sh RESULTS: the crash scenarios of the QEMU guests. qemu/boot.py puts this file on
# the job disk and qemu/guest/init runs it after core_pattern is set; everything it
# leaves in RESULTS goes back to the host. busybox sh.
#
# Recepts (one crash of each program, crash3 / threads8 / mycrasher, under each):
#   embedded  the target's setup as installed: core_pattern from the layer's init
#             script, /etc/minicoredumper/minicoredumper.cfg.json watching with the
#             embedded recept
#   debug     the embedded recept with write_debug_log, its own config and base_dir
#             (core_pattern names the config)
#   generic   the original's default recept (conf/generic.recept.json)
#   fatcore   the generic recept with dump_fat_core: the kernel's own whole core beside
#             ours, for the unwound frames against gdb's on the same crash
# The programs are minicoredumper-crashtests', off PATH in minicoredumper's ptest
# directory. Then the package test, minicoredumper-ptest's run-ptest, as a Yocto image
# runs it (ptest-runner: from its directory).
# Results: crashes.txt ("LABEL NAME rc=N ms=N": crash to published dump directory,
# 10 ms resolution), dumps/LABEL/NAME/<dump dir>, ptest.log (run-ptest's output),
# ptest.txt (its exit status, time and core_pattern after it), ptest-dumps/<dump dir>
# (the dumps it checked), python.txt (interpreter checks).

R=$1
ETC=/etc/minicoredumper
HANDLER=/usr/sbin/minicoredumper
PATTERN="|$HANDLER %P %u %g %s %t %h %e --dump-mode=%d"
PTEST=/usr/lib/minicoredumper/ptest
BIN=$PTEST/bin
mkdir -p "$R/dumps"
cp /job/job.json "$R/job.json"

uptime_ms() {
	read -r up _ </proc/uptime
	echo $(($(echo "$up" | tr -d .) * 10))
}

# crash LABEL BASE_DIR NAME COMMAND...: run the program, wait for its dump directory to
# be published in BASE_DIR (at most 60 s), move it to the results.
crash() {
	label=$1 base=$2 name=$3
	shift 3
	mkdir -p "$base"
	t0=$(uptime_ms)
	"$@" >/dev/null 2>&1
	rc=$?
	n=0
	while [ $n -lt 3000 ]; do
		set -- "$base"/*
		[ -e "$1" ] && break
		n=$((n + 1))
		sleep 0.02
	done
	t1=$(uptime_ms)
	dest=$R/dumps/$label/$name
	mkdir -p "$dest"
	for d in "$base"/*; do
		[ -e "$d" ] && mv "$d" "$dest/"
	done
	echo "$label $name rc=$rc ms=$((t1 - t0))" >>"$R/crashes.txt"
}

# The three programs under one configuration.
programs() {
	crash "$1" "$2" crash3 "$BIN/crash3"
	crash "$1" "$2" threads8 "$BIN/threads8"
	crash "$1" "$2" mycrasher "$BIN/mycrasher"
}

{
	echo "core_pattern=$(cat /proc/sys/kernel/core_pattern)"
	echo "core_pipe_limit=$(cat /proc/sys/kernel/core_pipe_limit)"
} >"$R/sysctl.txt"
cp -r "$ETC" "$R/etc-minicoredumper"

# 1. embedded: the installed setup, untouched.
base=$(sed -n 's/.*"base_dir" *: *"\([^"]*\)".*/\1/p' "$ETC/minicoredumper.cfg.json")
programs embedded "${base:-/var/crash/minicoredumper}"

# 2. debug: the embedded recept with the debug log, and no size cap (the log alone
# would not fit the EEPROM budget).
sed -e 's/"write_debug_log": *false/"write_debug_log": true/' \
	-e 's/"max_dump_size": *[0-9]*/"max_dump_size": 0/' \
	"$ETC/embedded.recept.json" >"$ETC/embedded-debug.recept.json"
cat >"$ETC/debug.cfg.json" <<EOF
{"base_dir": "/var/crash/debug", "watch": [{"recept": "embedded-debug.recept.json"}]}
EOF
echo "$PATTERN $ETC/debug.cfg.json" >/proc/sys/kernel/core_pattern
programs debug /var/crash/debug

# 3. generic: the original's default recept.
cat >"$ETC/generic.cfg.json" <<EOF
{"base_dir": "/var/crash/generic", "watch": [{"recept": "generic.recept.json"}]}
EOF
echo "$PATTERN $ETC/generic.cfg.json" >/proc/sys/kernel/core_pattern
programs generic /var/crash/generic

# 3b. fatcore: the generic recept that also keeps the kernel's own whole core
# (dump_fat_core), so that the summary's unwound frames can be checked against gdb's
# on the very same crash; a longer deadline, as copying threads8's whole core (eight
# 8 MiB stacks) under TCG takes longer than the default.
sed -e 's/"dump_fat_core": *false/"dump_fat_core": true/' \
	"$ETC/generic.recept.json" >"$ETC/fatcore.recept.json"
cat >"$ETC/fatcore.cfg.json" <<EOF
{"base_dir": "/var/crash/fatcore", "deadline_seconds": 120,
 "watch": [{"recept": "fatcore.recept.json"}]}
EOF
echo "$PATTERN $ETC/fatcore.cfg.json" >/proc/sys/kernel/core_pattern
programs fatcore /var/crash/fatcore
echo "$PATTERN" >/proc/sys/kernel/core_pattern

# 4. live dumps, once the runtime has them: the registry daemon started by the layer's
# init script, regloop (registers data and keeps running), then minicoredumper_trigger
# on demand, and a crash whose recept (generic) sets live_dumper.
live() {
	L=$R/live.txt
	if [ ! -x /usr/sbin/minicoredumper_trigger ] || [ ! -x "$BIN/regloop" ]; then
		echo "live=absent" >"$L"
		return
	fi
	/etc/init.d/minicoredumper-regd start >"$R/live-regd.txt" 2>&1
	n=0
	until grep -q "@minicoredumper@" /proc/net/unix || [ $n -ge 500 ]; do
		n=$((n + 1))
		sleep 0.02
	done
	"$BIN/regloop" live 2 >/tmp/regloop.out 2>&1 &
	pid=$!
	n=0
	until grep -q ready /tmp/regloop.out || [ $n -ge 500 ]; do
		n=$((n + 1))
		sleep 0.02
	done
	n=0
	until grep -q "^$pid " /run/minicoredumper/regd.pids 2>/dev/null || [ $n -ge 500 ]; do
		n=$((n + 1))
		sleep 0.02
	done
	{
		echo "regloop_pid=$pid"
		echo "regloop=$(cat /tmp/regloop.out)"
		echo "registered=$(grep -c "^$pid " /run/minicoredumper/regd.pids 2>/dev/null)"
	} >"$L"
	# TCG runs the guest many times slower than hardware: the handler's start of
	# minicoredumper_trigger alone takes seconds (the default deadline is 3 s), and
	# stopping a process for its dump takes longer than the default 25 ms bound.
	echo '{"base_dir": "/var/crash/live", "deadline_seconds": 60, "live_max_pause_ms": 2000,' \
		'"watch": [{"recept": "generic.recept.json"}]}' >"$ETC/live.cfg.json"
	t0=$(uptime_ms)
	minicoredumper_trigger --config "$ETC/live.cfg.json" /var/crash/trigger 1 \
		>"$R/live-trigger.txt" 2>&1
	echo "trigger_rc=$? ms=$(($(uptime_ms) - t0))" >>"$L"
	mkdir -p "$R/dumps/live"
	[ -d /var/crash/trigger ] && mv /var/crash/trigger "$R/dumps/live/trigger"
	echo "$PATTERN $ETC/live.cfg.json" >/proc/sys/kernel/core_pattern
	crash live /var/crash/live crash3 "$BIN/crash3"
	echo "$PATTERN" >/proc/sys/kernel/core_pattern
	kill "$pid"
	wait "$pid" 2>/dev/null
	/etc/init.d/minicoredumper-regd stop >>"$R/live-regd.txt" 2>&1
	echo "live=done" >>"$L"
}
live

# 5. The package test, with the installed core_pattern in place; it must put it back.
ptest() {
	if [ ! -x "$PTEST/run-ptest" ]; then
		echo "ptest=absent" >"$R/ptest.txt"
		return
	fi
	budget=$(sed -n 's/.*"eeprom_budget": *\([0-9]*\).*/\1/p' /job/job.json)
	t0=$(uptime_ms)
	(cd "$PTEST" && MCD_EEPROM_BUDGET=${budget:-4096} MCD_PTEST_KEEP="$R/ptest-dumps" \
		./run-ptest) >"$R/ptest.log" 2>&1
	rc=$?
	{
		echo "rc=$rc"
		echo "ms=$(($(uptime_ms) - t0))"
		echo "core_pattern_before=$PATTERN"
		echo "core_pattern_after=$(cat /proc/sys/kernel/core_pattern)"
		echo "core_pipe_limit_after=$(cat /proc/sys/kernel/core_pipe_limit)"
	} >"$R/ptest.txt"
}
ptest

# The interpreter with the pruned stdlib: start-up time, and every module of the
# installed package imports; the tools start.
{
	t0=$(uptime_ms)
	python3 -I -S -c pass
	echo "python_start_rc=$? ms=$(($(uptime_ms) - t0))"
	python3 -I -S -c 'import sys; print("version=" + sys.version.split()[0])'
	python3 -I -S -c '
import os, sys
site = "/usr/lib/python3.11/site-packages"
sys.path.append(site)
bad = 0
for f in sorted(os.listdir(site + "/minicoredumper")):
    if f.endswith(".py"):
        name = "minicoredumper." + f[:-3] if f != "__init__.py" else "minicoredumper"
        try:
            __import__(name)
            print("import-ok", name)
        except Exception as e:
            bad += 1
            print("import-failed", name, type(e).__name__, e)
print("modules_loaded=%d" % len(sys.modules))
sys.exit(1 if bad else 0)'
	echo "imports_rc=$?"
	for tool in /usr/bin/mcd /usr/bin/coreinject; do
		$tool --help >/dev/null 2>&1
		echo "tool $tool rc=$?"
	done
} >"$R/python.txt" 2>&1
echo "job_end_ms=$(uptime_ms)" >>"$R/crashes.txt"
