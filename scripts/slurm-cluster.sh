#!/usr/bin/env bash
# slurm-cluster.sh - a throw-away, single-node Slurm cluster on this machine,
# for testing `donut-explorer fleet` against a real Slurm (array jobs,
# SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT, sbatch --wait, ...).
#
# Usage:
#   scripts/slurm-cluster.sh start               install (if missing) and start munged, slurmctld, slurmd
#   scripts/slurm-cluster.sh stop                stop the daemons that `start` started (and only those)
#   scripts/slurm-cluster.sh status              daemon PIDs, sinfo and squeue
#   scripts/slurm-cluster.sh submit-wait FILE [sbatch args...] [-- script args...]
#                                                sbatch FILE, block until it ends, list its (array) tasks;
#                                                exit non-zero if any task failed
#   scripts/slurm-cluster.sh env                 print the `export SLURM_CONF=...` line
#   scripts/slurm-cluster.sh clean               stop, then delete the whole private folder
#
# `start` prints `export SLURM_CONF=...` on stdout (everything else goes to
# stderr), so `eval "$(scripts/slurm-cluster.sh start)"` sets up the shell.
#
# Everything (config, munge key and socket, state, spool, logs, PID files)
# lives under one private folder, ${SLURM_TEST_DIR:-/tmp/donut-slurm}.
# Nothing is written to /etc, and no system service (systemd or init.d) is
# used or touched: munged runs with its own key and socket, and slurm.conf
# points Slurm at that socket (AuthInfo=socket=...).
#
# Environment knobs:
#   SLURM_TEST_DIR        private folder                    (default /tmp/donut-slurm)
#   SLURM_TEST_TIMEOUT    seconds to wait for daemons/node  (default 60)
#   SLURM_TEST_CTLD_PORT  slurmctld port                    (default 6817)
#   SLURM_TEST_SLURMD_PORT slurmd port                      (default 6818)
#   SLURM_TEST_ADDR       address the daemons use           (default 127.0.0.1)
#   SLURM_TEST_SBATCH_WAIT=1  submit-wait uses `sbatch --wait` instead of
#                         polling squeue (Slurm 22.05's --wait adds ~10 s)
#
# Debian 12 ships Slurm 22.05 (packages slurm-wlm, munge). Run as root for a
# normal setup; as another user, packages are installed with sudo and the
# daemons run as that user (SlurmUser = SlurmdUser = you), which is enough to
# run your own jobs.
set -euo pipefail

# ---------------------------------------------------------------- settings
TEST_DIR=$(realpath -m "${SLURM_TEST_DIR:-/tmp/donut-slurm}")
TIMEOUT=${SLURM_TEST_TIMEOUT:-60}
CTLD_PORT=${SLURM_TEST_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_TEST_SLURMD_PORT:-6818}
ADDR=${SLURM_TEST_ADDR:-127.0.0.1}

CONF_DIR=$TEST_DIR/etc
CONF=$CONF_DIR/slurm.conf
MUNGE_DIR=$TEST_DIR/munge
MUNGE_KEY=$MUNGE_DIR/munge.key
MUNGE_SOCKET=$MUNGE_DIR/munge.socket
RUN_DIR=$TEST_DIR/run
LOG_DIR=$TEST_DIR/log
STATE_DIR=$TEST_DIR/state
SPOOL_DIR=$TEST_DIR/spool

MUNGED_PID=$RUN_DIR/munged.pid
SLURMCTLD_PID=$RUN_DIR/slurmctld.pid
SLURMD_PID=$RUN_DIR/slurmd.pid

# Every Slurm command this script runs (and every daemon it starts) uses our
# config, whatever the caller's environment says.
export SLURM_CONF=$CONF

# ---------------------------------------------------------------- helpers
log() { printf '[slurm-cluster] %s\n' "$*" >&2; }
die() { printf '[slurm-cluster] ERROR: %s\n' "$*" >&2; exit 1; }

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    else
        command -v sudo >/dev/null || die "not root and sudo is missing; cannot run: $*"
        sudo "$@"
    fi
}

# Find a program also in the sbin directories, which a non-root PATH may lack.
find_bin() {
    local name=$1 dir
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return 0
    fi
    for dir in /usr/sbin /sbin /usr/local/sbin /usr/bin /usr/local/bin; do
        if [[ -x $dir/$name ]]; then
            printf '%s\n' "$dir/$name"
            return 0
        fi
    done
    return 1
}

# Is PID alive and is its executable called NAME? (Guards against a stale PID
# file whose number now belongs to some other process.)
pid_is() {
    local pid=$1 name=$2
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/comm ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]]
}

# PID recorded in FILE if that process is alive and is NAME; empty otherwise.
live_pid() {
    local file=$1 name=$2 pid
    [[ -s $file ]] || return 0
    pid=$(tr -dc '0-9' <"$file")
    if pid_is "$pid" "$name"; then
        printf '%s\n' "$pid"
    fi
}

# PIDs of processes named NAME whose environment carries our SLURM_CONF, i.e.
# processes started by this script (the daemons inherit it, slurmstepd
# inherits it from slurmd). Used as a fallback when a PID file is missing.
# (Reads /proc directly: minimal images have no procps/pgrep.)
ours_by_env() {
    local name=$1 dir pid
    for dir in /proc/[0-9]*; do
        pid=${dir#/proc/}
        [[ $(cat "$dir/comm" 2>/dev/null) == "$name" ]] || continue
        if tr '\0' '\n' <"$dir/environ" 2>/dev/null | grep -qxF "SLURM_CONF=$CONF"; then
            printf '%s\n' "$pid"
        fi
    done
}

# Print the last lines of every log file we own (used on failures).
tail_logs() {
    local f
    for f in "$LOG_DIR"/*.log; do
        [[ -e $f ]] || continue
        printf '\n----- tail %s -----\n' "$f" >&2
        tail -n 30 "$f" >&2 || true
    done
}

# wait_for SECONDS COMMAND...: retry COMMAND until it succeeds; return 1
# when it still fails after SECONDS.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

# Send SIGTERM to PID, wait for it to go, SIGKILL after 15 s.
terminate() {
    local pid=$1 name=$2 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 150; i++)); do
        pid_is "$pid" "$name" || return 0
        sleep 0.1
    done
    log "$name ($pid) ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
}

# ---------------------------------------------------------------- install
pkg_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

install_packages() {
    local missing=() pkg
    for pkg in slurm-wlm munge; do
        pkg_installed "$pkg" || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    log "installing ${missing[*]} (apt-get)"
    # Fresh images often have no package lists yet; update once, then install.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >&2
}

# ---------------------------------------------------------------- munge
munge_roundtrip() {
    munge -n -S "$MUNGE_SOCKET" | unmunge -S "$MUNGE_SOCKET"
}

start_munged() {
    local munged mungekey pid
    munged=$(find_bin munged) || die "munged not found after installing munge"

    if [[ ! -s $MUNGE_KEY ]]; then
        log "creating munge key $MUNGE_KEY"
        if mungekey=$(find_bin mungekey); then
            "$mungekey" --create --keyfile="$MUNGE_KEY"
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
        fi
    fi
    chmod 0600 "$MUNGE_KEY"

    pid=$(live_pid "$MUNGED_PID" munged)
    if [[ -n $pid ]]; then
        log "munged already running (pid $pid)"
        return 0
    fi
    rm -f "$MUNGED_PID"
    log "starting munged"
    # munged daemonizes itself; its own socket, key, seed, log and PID file.
    # --force: munged refuses to start when a folder on the way to its key,
    # socket or log is world-writable without the sticky bit (e.g. an odd
    # SLURM_TEST_DIR parent); --force makes that a warning. (A socket left
    # by a kill -9'd munged does not need it.)
    "$munged" --force \
        --socket="$MUNGE_SOCKET" \
        --key-file="$MUNGE_KEY" \
        --pid-file="$MUNGED_PID" \
        --log-file="$LOG_DIR/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" ||
        { tail_logs; die "munged failed to start"; }

    # Round trip a credential to make sure the socket works.
    if ! wait_for "$TIMEOUT" munge_roundtrip; then
        tail_logs
        die "munged does not answer on $MUNGE_SOCKET"
    fi
}

# ---------------------------------------------------------------- slurm.conf
# The node: this host's short name, its CPU count and memory.
write_slurm_conf() {
    local host cpus mem_kb mem_mb user
    host=$(hostname -s)
    cpus=$(nproc)
    mem_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
    # slurmd drains a node whose configured RealMemory exceeds what it finds,
    # so stay a little (1%) under MemTotal.
    mem_mb=$((mem_kb * 99 / 100 / 1024))
    user=$(id -un)

    cat >"$CONF" <<EOF
# Generated by scripts/slurm-cluster.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ); regenerated by every start.
ClusterName=donut
SlurmctldHost=$host($ADDR)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=$user
SlurmdUser=$user

# Authentication through our private munged.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge

# Everything under $TEST_DIR.
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR/%n
SlurmctldPidFile=$SLURMCTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

# No cgroups: they may be missing or read-only in containers.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SwitchType=switch/none

# No slurmdbd, so no sacct; a plain-text job completion log instead.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log

SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# Keep finished jobs visible to scontrol for an hour (sacct is unavailable).
MinJobAge=3600
MaxArraySize=10001
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
# No mail on this box; the default /usr/bin/mail is usually missing.
MailProg=/bin/true
KillWait=5

NodeName=$host NodeAddr=$ADDR CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    # No cgroup.conf: with the plugins above Slurm does not need one (an
    # empty one only makes slurmd print "file is empty").
    log "wrote $CONF (node $host, CPUs=$cpus, RealMemory=${mem_mb}M)"
}

# ---------------------------------------------------------------- daemons
# Does something accept TCP connections on $ADDR:PORT?
port_in_use() {
    (exec 3<>"/dev/tcp/$ADDR/$1") 2>/dev/null
}

# start_daemon NAME PIDFILE PORT: start slurmctld or slurmd (both daemonize
# and write PIDFILE) unless ours is already running; fail early if the port
# is taken or the daemon dies right away.
start_daemon() {
    local name=$1 pidfile=$2 port=$3 bin pid i
    bin=$(find_bin "$name") || die "$name not found"
    pid=$(live_pid "$pidfile" "$name")
    if [[ -n $pid ]]; then
        log "$name already running (pid $pid)"
        return 0
    fi
    rm -f "$pidfile"
    if port_in_use "$port"; then
        die "port $port on $ADDR is already in use (another Slurm?); set SLURM_TEST_CTLD_PORT / SLURM_TEST_SLURMD_PORT"
    fi
    log "starting $name"
    "$bin" || { tail_logs; die "$name failed to start"; }
    # It forks and writes its PID file; give it 10 s to show up alive.
    for ((i = 0; i < 100; i++)); do
        [[ -n $(live_pid "$pidfile" "$name") ]] && return 0
        sleep 0.1
    done
    tail_logs
    die "$name exited right after starting (see $LOG_DIR/$name.log)"
}

start_slurmctld() {
    # It keeps the job state of earlier runs in $STATE_DIR (`clean` wipes it).
    start_daemon slurmctld "$SLURMCTLD_PID" "$CTLD_PORT"
    if ! wait_for "$TIMEOUT" scontrol ping; then
        tail_logs
        die "slurmctld does not answer (scontrol ping) after ${TIMEOUT}s"
    fi
}

start_slurmd() {
    start_daemon slurmd "$SLURMD_PID" "$SLURMD_PORT"
}

node_state() {
    sinfo -h -N -n "$(hostname -s)" -o '%T' 2>/dev/null | head -n 1
}

# Up and usable: idle on a fresh cluster; mixed/allocated when jobs kept in
# the state folder (or a start on a running cluster) keep it busy. A
# trailing "*" (not responding), down, drained, unknown... do not count.
node_is_up() {
    case $(node_state) in
    idle | mixed | allocated | completing) return 0 ;;
    *) return 1 ;;
    esac
}

wait_node_idle() {
    log "waiting for node $(hostname -s) to become idle"
    if ! wait_for "$TIMEOUT" node_is_up; then
        log "node state: '$(node_state)'"
        sinfo -R >&2 || true
        tail_logs
        die "node $(hostname -s) not idle after ${TIMEOUT}s"
    fi
}

# ---------------------------------------------------------------- subcommands
cmd_start() {
    local t0=$SECONDS
    install_packages
    # 0755: not writable by group/other, which munged insists on.
    mkdir -p "$CONF_DIR" "$MUNGE_DIR" "$RUN_DIR" "$LOG_DIR" "$STATE_DIR" "$SPOOL_DIR/$(hostname -s)"
    chmod 0755 "$TEST_DIR" "$CONF_DIR" "$MUNGE_DIR" "$RUN_DIR" "$LOG_DIR" "$STATE_DIR" "$SPOOL_DIR"

    start_munged
    # Regenerate the config only when slurmctld is not running on the old one.
    if [[ -z $(live_pid "$SLURMCTLD_PID" slurmctld) || ! -s $CONF ]]; then
        write_slurm_conf
    fi
    start_slurmctld
    start_slurmd
    wait_node_idle

    log "cluster up in $((SECONDS - t0))s: $(sinfo -h -o '%P %a %D %T %N' | head -n 1)"
    log "Slurm $(sinfo -V 2>/dev/null | awk '{print $2}'), config $CONF"
    log "to use it from your shell:"
    printf 'export SLURM_CONF=%s\n' "$CONF"
}

no_active_jobs() {
    [[ -z $(squeue -h -t RUNNING,COMPLETING,PENDING -o '%A' 2>/dev/null) ]]
}

cmd_stop() {
    local pid name file jobs
    # Cancel jobs still in our cluster so their slurmstepds end too (and a
    # later start does not recover them). Asks whatever answers on our
    # config, in case the PID file is gone.
    if [[ -n $(live_pid "$SLURMCTLD_PID" slurmctld) || -n $(ours_by_env slurmctld) ]]; then
        jobs=$(squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ' || true)
        if [[ -n ${jobs// /} ]]; then
            log "cancelling jobs: $jobs"
            # shellcheck disable=SC2086 # word splitting of the job list is wanted
            scancel $jobs 2>/dev/null || true
            wait_for 15 no_active_jobs || true
        fi
    fi

    for name in slurmd slurmctld munged; do
        case $name in
        slurmd) file=$SLURMD_PID ;;
        slurmctld) file=$SLURMCTLD_PID ;;
        munged) file=$MUNGED_PID ;;
        esac
        pid=$(live_pid "$file" "$name")
        if [[ -n $pid ]]; then
            log "stopping $name (pid $pid)"
            terminate "$pid" "$name"
        fi
        # A daemon we started whose PID file got lost (ours by environment;
        # munged does not inherit SLURM_CONF, so only the Slurm ones).
        for pid in $(ours_by_env "$name"); do
            log "stopping $name (pid $pid, found by SLURM_CONF)"
            terminate "$pid" "$name"
        done
        rm -f "$file"
    done
    # Job step daemons of ours that outlived slurmd.
    for pid in $(ours_by_env slurmstepd); do
        log "stopping leftover slurmstepd (pid $pid)"
        terminate "$pid" slurmstepd
    done
    log "stopped"
}

cmd_status() {
    local name file pid
    for name in munged slurmctld slurmd; do
        case $name in
        munged) file=$MUNGED_PID ;;
        slurmctld) file=$SLURMCTLD_PID ;;
        slurmd) file=$SLURMD_PID ;;
        esac
        pid=$(live_pid "$file" "$name")
        printf '%-10s %s\n' "$name" "${pid:-not running}"
    done
    printf 'SLURM_CONF %s\n\n' "$CONF"
    if [[ -z $(live_pid "$SLURMCTLD_PID" slurmctld) ]]; then
        echo "slurmctld is not running (scripts/slurm-cluster.sh start)"
        return 1
    fi
    sinfo
    echo
    squeue -a -t all -o '%.18i %.9P %.20j %.8u %.10T %.10M %.6D %R'
}

# Print one line per task of JOBID and return 1 when any task did not
# complete with exit code 0. Uses sacct when accounting works, then
# scontrol (MinJobAge keeps finished jobs for an hour), then the jobcomp log.
report_job() {
    local jobid=$1 lines bad=0
    if sacct -n -j "$jobid" -o JobID >/dev/null 2>&1; then
        sacct -X -j "$jobid" -o JobID%20,JobName%20,State,ExitCode,NodeList,Elapsed
        lines=$(sacct -n -X -P -j "$jobid" -o State,ExitCode)
        if grep -qv '^COMPLETED|0:0$' <<<"$lines"; then bad=1; fi
        return "$bad"
    fi
    lines=$(scontrol -o show job "$jobid" 2>/dev/null || true)
    if [[ -n $lines ]]; then
        printf '%-14s %-8s %-6s %-12s %-6s %-8s %s\n' TASK JOBID INDEX STATE EXIT NODES STDOUT
        # scontrol -o: one "Key=Value Key=Value ..." line per array task
        # (a still-pending range of tasks shares one line, e.g. 4-9).
        awk '{
            delete f
            for (i = 1; i <= NF; i++) { k = $i; sub(/=.*/, "", k); v = $i; sub(/^[^=]*=/, "", v); f[k] = v }
            idx = ("ArrayTaskId" in f) ? f["ArrayTaskId"] : "-"
            name = ("ArrayTaskId" in f) ? f["ArrayJobId"] "_" idx : f["JobId"]
            printf "%-14s %-8s %-6s %-12s %-6s %-8s %s\n", name, f["JobId"], idx, f["JobState"], f["ExitCode"], f["NodeList"], f["StdOut"]
            if (f["JobState"] != "COMPLETED" || f["ExitCode"] != "0:0") bad = 1
        } END { exit bad }' <<<"$lines" | sort -t_ -k2,2n || bad=1
        return "$bad"
    fi
    # The job completion log has one line per finished task, with its own
    # JobId and, for array tasks, ArrayJobId/ArrayTaskId.
    lines=$(grep -E "(^JobId|ArrayJobId)=$jobid " "$LOG_DIR/jobcomp.log" 2>/dev/null || true)
    if [[ -n $lines ]]; then
        printf '%s\n' "$lines"
        if grep -Eqv 'JobState=COMPLETED .* ExitCode=0:0' <<<"$lines"; then bad=1; fi
        return "$bad"
    fi
    log "no record of job $jobid (sacct disabled, scontrol has forgotten it)"
    return 1
}

# Is JOBID (every task of an array) finished? squeue lists only jobs that
# are still pending/running/completing; MinJobAge keeps the record, so an
# empty answer means "ended". A job slurmctld no longer knows has ended too.
job_ended() {
    local out
    if out=$(squeue -h -j "$1" -o '%i' 2>&1); then
        [[ -z $out ]]
    else
        [[ $out == *"Invalid job id"* ]]
    fi
}

cmd_submit_wait() {
    (($# >= 1)) || die "usage: $0 submit-wait SBATCH_FILE [sbatch args...] [-- script args...]"
    local file=$1 out rc=0 jobid
    shift
    # sbatch's own options, then (after --) the batch script's arguments.
    local sbatch_args=() script_args=()
    while (($#)); do
        if [[ $1 == -- ]]; then
            shift
            script_args=("$@")
            break
        fi
        sbatch_args+=("$1")
        shift
    done
    set -- "${sbatch_args[@]}"
    [[ -r $file ]] || die "cannot read $file"
    [[ -n $(live_pid "$SLURMCTLD_PID" slurmctld) ]] || die "cluster not running ($0 start)"

    if [[ ${SLURM_TEST_SBATCH_WAIT:-0} == 1 ]]; then
        # The real `sbatch --wait`: returns when the job (every array task)
        # has ended, with the highest exit code of any task (1 for a
        # signal). Slurm 22.05 polls slowly: a 1 s job takes ~10 s.
        log "sbatch --parsable --wait ${*:+$* }$file"
        out=$(sbatch --parsable --wait "$@" "$file" "${script_args[@]}") || rc=$?
        log "sbatch exit code $rc"
    else
        # Same effect, faster: submit, then poll squeue every 0.5 s.
        log "sbatch --parsable ${*:+$* }$file"
        out=$(sbatch --parsable "$@" "$file" "${script_args[@]}") || die "sbatch failed (exit $?)"
    fi
    jobid=${out%%;*} # --parsable prints "jobid[;cluster]"
    jobid=${jobid//[!0-9]/}
    [[ -n $jobid ]] || die "sbatch did not return a job id (exit $rc): $out"
    if [[ ${SLURM_TEST_SBATCH_WAIT:-0} != 1 ]]; then
        log "job $jobid submitted; waiting for it to end"
        until job_ended "$jobid"; do
            [[ -n $(live_pid "$SLURMCTLD_PID" slurmctld) ]] || die "slurmctld died while job $jobid ran"
            sleep 0.5
        done
    fi
    log "job $jobid ended"

    local report_rc=0
    report_job "$jobid" || report_rc=$?
    if ((rc != 0 || report_rc != 0)); then
        log "job $jobid: at least one task failed"
        return 1
    fi
    log "job $jobid: all tasks completed"
}

cmd_clean() {
    cmd_stop
    # Only ever delete a folder that looks like ours.
    if [[ -d $TEST_DIR ]]; then
        [[ -e $CONF || -e $MUNGE_DIR ]] || die "$TEST_DIR does not look like a slurm-cluster.sh folder; not deleting it"
        rm -rf "$TEST_DIR"
        log "removed $TEST_DIR"
    fi
}

main() {
    local cmd=${1:-}
    if (($# > 0)); then shift; fi
    case $cmd in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    submit-wait) cmd_submit_wait "$@" ;;
    env) printf 'export SLURM_CONF=%s\n' "$CONF" ;;
    clean) cmd_clean "$@" ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
        [[ $cmd == -h || $cmd == --help || $cmd == help ]]
        ;;
    esac
}

main "$@"
