#!/usr/bin/env bash
# A throwaway single-node Slurm cluster on localhost, for tests/test_slurm.py and CI.
#
#   tests/slurm/cluster.sh start   # write /etc/slurm/slurm.conf, start munged, slurmctld, slurmd
#   tests/slurm/cluster.sh stop    # kill exactly the daemons `start` launched (by recorded PID)
#
# Needs root and Debian's slurm-wlm + munge (tests/slurm/install.sh). No systemd:
# the daemons run in the foreground (-D / -F) as background children of this script,
# and their PIDs go to $LP_SLURM_DIR/pids.
#
# A GPU-shaped node (what profiles/slurm asks of a GPU node, on a machine without one):
#   LP_SLURM_GPUS=1        the node offers 1 GPU (GRES gpu, /dev/null standing in for the
#                          device; up to 4): jobs asking --gpus=1 are accepted and run, on the CPU
#   LP_SLURM_CPUS=8        CPUs the node declares (default: nproc)
#   LP_SLURM_MEM_MB=65536  memory it declares (default: this machine's minus 1 GiB)
# Declared values above the hardware are accepted (SlurmdParameters=config_overrides) and
# nothing enforces them (no cgroups): the jobs share the real cores.
set -euo pipefail

LP_SLURM_DIR="${LP_SLURM_DIR:-/tmp/lotteryprune-slurm}"
PIDFILE="$LP_SLURM_DIR/pids"
# The job step drops SLURM_CONF, so the config must sit at the compiled-in default path.
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
MARKER="# written by lotteryprune tests/slurm/cluster.sh"
WAIT_S="${LP_SLURM_WAIT_S:-60}"

log() { echo "[slurm-cluster] $*" >&2; }

dump_logs() {
    for f in "$LP_SLURM_DIR"/*.log; do
        [ -f "$f" ] || continue
        echo "----- $f (last 40 lines) -----" >&2
        tail -n 40 "$f" >&2
    done
}

write_conf() {
    local cpus mem_mb gpus gres_types="" node_gres=""
    cpus="${LP_SLURM_CPUS:-$(nproc)}"
    # Leave a margin: slurmd drains a node that reports less memory than configured.
    mem_mb="$(free -m | awk '/^Mem:/ {print $2}')"
    mem_mb=$(( mem_mb > 2048 ? mem_mb - 1024 : mem_mb / 2 ))
    mem_mb="${LP_SLURM_MEM_MB:-$mem_mb}"
    gpus="${LP_SLURM_GPUS:-0}"

    mkdir -p "$CONF_DIR" "$LP_SLURM_DIR/spool/ctld" "$LP_SLURM_DIR/spool/d"
    if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
        log "keeping a copy of the existing $CONF as $CONF.lotteryprune-bak"
        cp -p "$CONF" "$CONF.lotteryprune-bak"
    fi
    local gres_conf="$CONF_DIR/gres.conf"
    if [ -f "$gres_conf" ] && ! grep -qF "$MARKER" "$gres_conf"; then
        log "keeping a copy of the existing $gres_conf as $gres_conf.lotteryprune-bak"
        cp -p "$gres_conf" "$gres_conf.lotteryprune-bak"
    fi
    if [ "$gpus" -gt 0 ]; then
        # No GPU here: slurmd counts a GPU per device file, so harmless character devices
        # stand in for them (no cgroups bind them: task/none). No autodetection.
        local stand_ins=(/dev/null /dev/zero /dev/full /dev/urandom) files
        if [ "$gpus" -gt "${#stand_ins[@]}" ]; then log "at most ${#stand_ins[@]} stand-in GPUs"; exit 1; fi
        files="$(IFS=,; echo "${stand_ins[*]:0:$gpus}")"
        gres_types="GresTypes=gpu"
        node_gres="Gres=gpu:$gpus"
        printf '%s\nAutoDetect=off\nNodeName=localhost Name=gpu File=%s\n' "$MARKER" "$files" > "$gres_conf"
    else
        rm -f "$gres_conf"
    fi
    cat > "$CONF" <<EOF
$MARKER
ClusterName=lotteryprune
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$LP_SLURM_DIR/spool/ctld
SlurmdSpoolDir=$LP_SLURM_DIR/spool/d
SlurmctldPidFile=$LP_SLURM_DIR/slurmctld.pid
SlurmdPidFile=$LP_SLURM_DIR/slurmd.pid
SlurmctldLogFile=$LP_SLURM_DIR/slurmctld.log
SlurmdLogFile=$LP_SLURM_DIR/slurmd.log
# No cgroups in a container: track processes by PID ancestry, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# No slurmdbd: accounting off, so sacct has nothing to report (use squeue for status).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# Keep finished jobs visible to squeue long enough for snakemake's status checks.
MinJobAge=600
SlurmdParameters=config_overrides
$gres_types
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb $node_gres State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    log "wrote $CONF (CPUs=$cpus RealMemory=$mem_mb GPUs=$gpus)"
}

start_daemon() {
    # start_daemon NAME CMD...: run CMD in the background, log to NAME.log, record its PID.
    local name="$1"; shift
    "$@" >"$LP_SLURM_DIR/$name.log" 2>&1 &
    echo "$name $!" >>"$PIDFILE"
    log "started $name (pid $!)"
}

node_state() { sinfo -h -N -n localhost -o '%T' 2>/dev/null | head -n1; }

start() {
    if [ "$(id -u)" -ne 0 ]; then log "must run as root"; exit 1; fi
    for bin in munged slurmctld slurmd sinfo; do
        command -v "$bin" >/dev/null || { log "$bin not found; run tests/slurm/install.sh"; exit 1; }
    done
    if [ -s "$PIDFILE" ]; then
        log "$PIDFILE exists: a cluster may already run; stopping it first"
        stop
    fi
    mkdir -p "$LP_SLURM_DIR"
    : >"$PIDFILE"
    write_conf

    # munge: the Debian package creates the key on install; create one if absent.
    if [ ! -s /etc/munge/munge.key ]; then
        log "creating /etc/munge/munge.key"
        if command -v mungekey >/dev/null; then mungekey --create --force;
        else dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; fi
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    # setpriv execs munged as the munge user, so the recorded PID is munged's own.
    start_daemon munged setpriv --reuid=munge --regid=munge --init-groups munged -F
    for _ in $(seq 1 50); do
        [ -S /run/munge/munge.socket.2 ] && break
        sleep 0.1
    done

    # -D: foreground, so $! is the daemon; -c: a clean cluster, no jobs or node state
    # left over from an earlier run.
    start_daemon slurmctld slurmctld -D -c
    start_daemon slurmd slurmd -D -N localhost

    local deadline=$(( SECONDS + WAIT_S )) state=""
    while [ $SECONDS -lt $deadline ]; do
        state="$(node_state)"
        case "$state" in
            idle|mixed|allocated) log "node localhost is $state"; sinfo >&2; return 0 ;;
            drain*|down*)
                # A node left down from an earlier run: return it to service.
                scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 1
    done
    log "node not idle after ${WAIT_S}s (state: '${state:-unknown}')"
    sinfo -N -l >&2 || true
    scontrol show node localhost >&2 || true
    dump_logs
    stop
    exit 1
}

stop() {
    [ -f "$PIDFILE" ] || { log "no $PIDFILE: nothing to stop"; return 0; }
    local name pid
    # Cancel what is still queued or running, so no job step outlives slurmd.
    if squeue -h >/dev/null 2>&1; then
        scancel --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 1 20); do
            [ -z "$(squeue -h -t PD,R,CG 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    # Stop in reverse start order: slurmd, slurmctld, munged.
    tac "$PIDFILE" | while read -r name pid; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
            log "stopped $name (pid $pid)"
        fi
    done
    rm -f "$PIDFILE"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    logs) dump_logs ;;
    *) echo "usage: $0 start|stop|logs" >&2; exit 2 ;;
esac
