#!/bin/bash
# demo/demo.sh start|stop|status — run etcd and sabakan on this machine, load
# a sample inventory of four racks with sabactl and show it.
#
#   make demo-sabakan        # = make setup build && demo/demo.sh start
#   make demo-sabakan-stop   # = demo/demo.sh stop
#
# Everything lives in $NECO_DEMO_DIR (default /tmp/neco-demo): data, logs,
# pid files. Ports, all on loopback: etcd 127.0.0.1:32379 (peers 32380),
# sabakan HTTP :10080, HTTPS :10443, metrics :10081, DHCP :10067. The
# NECO_DEMO_* variables below override them (the demo's test uses free ports).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${NECO_DEMO_BIN:-$REPO/bin}
DEMO=$REPO/demo
RUN=${NECO_DEMO_DIR:-/tmp/neco-demo}
ETCD_CLIENT=${NECO_DEMO_ETCD:-127.0.0.1:32379}
ETCD_PEER=${NECO_DEMO_ETCD_PEER:-127.0.0.1:32380}
HTTP=${NECO_DEMO_HTTP:-127.0.0.1:10080}
HTTPS=${NECO_DEMO_HTTPS:-127.0.0.1:10443}
METRICS=${NECO_DEMO_METRICS:-127.0.0.1:10081}
DHCP=${NECO_DEMO_DHCP:-127.0.0.1:10067}
SABACTL=("$BIN/sabactl" --server "http://$HTTP" --tls-server "https://$HTTPS" --insecure)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "sabactl ${*}"; "${SABACTL[@]}" "$@"; }
die() { echo "demo: $*" >&2; exit 1; }

alive() { [[ -f $RUN/$1.pid ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

# wait_for NAME CHECK... retries CHECK for 30 s.
wait_for() {
    local name=$1; shift
    for _ in $(seq 300); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        alive "$name" || die "$name exited; see $RUN/$name.log:
$(tail -20 "$RUN/$name.log")"
        sleep 0.1
    done
    die "$name did not become ready in 30 s; see $RUN/$name.log"
}

port_free() {
    if [[ $1 == "$DHCP" ]]; then
        ! ss -Hlun "sport = :${1#*:}" | grep -q .
    else
        ! (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null
    fi
}

start() {
    for b in etcd sabakan sabactl; do
        [[ -x $BIN/$b ]] || die "$BIN/$b is missing: run 'make build' (or 'make demo-sabakan', which builds)"
    done
    if alive etcd || alive sabakan; then
        echo "The demo is already running (make demo-sabakan-stop stops it)."
        show
        return
    fi
    for p in $ETCD_CLIENT $ETCD_PEER $HTTP $HTTPS $METRICS $DHCP; do
        port_free "$p" || die "port $p is in use; stop whatever listens there (ss -ltnp | grep ${p#*:})"
    done
    mkdir -p "$RUN"

    say "Starting etcd ($($BIN/etcd --version | sed -n 1p)) on $ETCD_CLIENT"
    setsid "$BIN/etcd" --name demo --data-dir "$RUN/etcd" \
        --listen-client-urls "http://$ETCD_CLIENT" --advertise-client-urls "http://$ETCD_CLIENT" \
        --listen-peer-urls "http://$ETCD_PEER" --initial-advertise-peer-urls "http://$ETCD_PEER" \
        --initial-cluster "demo=http://$ETCD_PEER" --log-level warn \
        >"$RUN/etcd.log" 2>&1 </dev/null &
    echo $! >"$RUN/etcd.pid"
    wait_for etcd "$BIN/etcdctl" --endpoints "$ETCD_CLIENT" endpoint health

    cat >"$RUN/sabakan.yml" <<EOF
http: $HTTP
https: $HTTPS
metrics: $METRICS
dhcp-bind: $DHCP
data-dir: $RUN/sabakan
advertise-url: http://$HTTP
advertise-url-https: https://$HTTPS
server-cert: $RUN/sabakan-tls/server.crt
server-key: $RUN/sabakan-tls/server.key
etcd:
  endpoints: [http://$ETCD_CLIENT]
  prefix: /sabakan/
EOF
    say "Starting sabakan with $RUN/sabakan.yml"
    cat "$RUN/sabakan.yml"
    setsid "$BIN/sabakan" -config-file "$RUN/sabakan.yml" >"$RUN/sabakan.log" 2>&1 </dev/null &
    echo $! >"$RUN/sabakan.pid"
    wait_for sabakan curl -sf "http://$HTTP/health"
    curl -s "http://$HTTP/health"

    say "Loading the sample inventory: IPAM, DHCP and 28 machines in 4 racks"
    run ipam set -f "$DEMO/ipam.json"
    run dhcp set -f "$DEMO/dhcp.json"
    run machines create -f "$DEMO/machines.json"

    say "A few changes, each recorded in the audit log"
    run machines set-state cs-1-0 healthy
    run machines set-state cs-1-1 healthy
    run machines set-state cs-1-1 unreachable
    run machines set-label ss-2-0 disk-layout v2
    run machines set-retire-date ss-3-1 2027-12-31
    show
}

show() {
    say "All machines"
    run machines get -o simple
    say "Rack 1, compute servers only"
    run machines get --rack 1 --role cs -o simple
    say "Everything but boot servers and healthy machines, as JSON (first machine)"
    run machines get --without-role boot --without-state healthy | sed -n 1,20p
    echo "..."
    say "The same inventory over GraphQL (the query the Kubernetes engine sends)"
    printf '$ curl -s -XPOST http://%s/graphql -d '\''{"query":"{ searchMachines(having: {racks: [1]}, notHaving: {roles: [\\"boot\\"]}) { spec { serial ipv4 } status { state } } }"}'\''\n' "$HTTP"
    curl -s -XPOST "http://$HTTP/graphql" \
        -d '{"query":"{ searchMachines(having: {racks: [1]}, notHaving: {roles: [\"boot\"]}) { spec { serial ipv4 } status { state } } }"}'
    echo
    say "The audit log (the last entries)"
    printf '$ sabactl logs | tail -6\n'
    "${SABACTL[@]}" logs | tail -6
    cat <<EOF

The demo is running. Try, for instance:
  bin/sabactl machines get --labels product=R740xd -o simple
  bin/sabactl machines set-state cs-0-0 healthy; bin/sabactl machines get-state cs-0-0
  curl -s http://$HTTP/api/v1/machines?rack=2 | jq '.[].spec.ipv4'
  curl -s http://$METRICS/metrics | grep ^sabakan_machines
(sabactl's defaults point at this server.) Logs: $RUN/*.log.
Stop it and remove its data with:  make demo-sabakan-stop
EOF
}

stop() {
    local stopped=0
    for name in sabakan etcd; do
        if alive "$name"; then
            local pid
            pid=$(cat "$RUN/$name.pid")
            echo "stopping $name (pid $pid)"
            kill "$pid"
            for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
            stopped=1
        fi
    done
    if [[ -d $RUN ]]; then
        rm -rf "$RUN"
        echo "removed $RUN"
    fi
    [[ $stopped == 1 ]] || echo "the demo was not running"
}

status() {
    for name in etcd sabakan; do
        if alive "$name"; then echo "$name: running (pid $(cat "$RUN/$name.pid"))"; else echo "$name: stopped"; fi
    done
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) status ;;
show) show ;;
*) echo "usage: $0 start|stop|status|show" >&2; exit 2 ;;
esac
