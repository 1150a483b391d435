#!/usr/bin/env bash
# The load benches of issue 7 (performance), with the raw UDP floor in the same invocation
# (`dialer bench --floor`) and, where SIPp can carry the load, SIPp as UAC (`--sipp`); reports
# as JSON in one directory. Both ends use shared RTP sockets unless the scenario says otherwise.
#
#   scripts/loadtest.sh [OUT_DIR] [SCENARIO...]
#
#   OUT_DIR    where the reports go (default target/loadtest); per scenario NAME.json (the
#              report), NAME.log (stderr), and load.txt (the machine's load before each run)
#   SCENARIO   any of (default: all, in this order)
#     c2000      100 calls/s up to 2,000 answered calls of 60 s, 45 s of dialling (BENCHMARKS.md)
#     c2000-per-call  the same with a port pair per call on both ends (before shared sockets)
#     c2000-bare the same without VAD, AMD and in-band DTMF (the bare RTP path)
#     c4000-2t, sustained-2t  c4000 and sustained with each end's media clock on 2 threads
#     c500       50 calls/s up to 500 answered calls of 30 s, 20 s of dialling: the SIPp
#                comparison at a load SIPp 3.6.1 carries here (a thread per pcap-playing call)
#     c4000      100 calls/s up to 4,000 answered calls of 60 s, 45 s of dialling
#     sustained  100 calls/s for 10 minutes, 30 s answered calls (~3,000 live, 360,000 calls/h)
#     burst      1,000 calls/s for 20 s of unanswered outcomes (busy, 404, decline); no SIPp
#                (its scenario expects a 200), no floor (no media)
#     smoke      20 calls/s, 2 s calls, 1 s floor: checks the script and the tools (~15 s)
#
#   DIALER_BIN=path   use this dialer binary instead of building target/release/dialer
#
# Needs: root (SIPp plays its pcap through raw sockets), `sipp` (apt-get install sip-tester).
# Every scenario runs under `timeout` (its dialling + call length + SIPp's repeat of it + the
# floor + a margin). Numbers are only meaningful on a quiet machine: the script prints the
# 1-minute load before each scenario and flags it when it is 0.7 or more. Both ends and SIPp
# share the machine; the bench's own simulators and SIPp are stopped by PID when it ends.
set -euo pipefail

cd "$(dirname "$0")/.."
out=${1:-target/loadtest}
shift || true
scenarios=("$@")
if ((${#scenarios[@]} == 0)); then
  scenarios=(c500 c2000 c4000 sustained burst)
fi

log() { printf '[loadtest] %s\n' "$*" >&2; }

load1() { cut -d' ' -f1 /proc/loadavg; }

if [[ $(id -u) != 0 ]]; then
  log "SIPp's pcap play needs root (raw sockets): run as root"
  exit 2
fi
command -v sipp >/dev/null 2>&1 || { log "sipp is not installed: apt-get install sip-tester"; exit 2; }

log "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
log "load before the build: $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -n ${DIALER_BIN:-} ]]; then
  bin=$DIALER_BIN
  log "using $bin (DIALER_BIN; not rebuilt)"
else
  cargo build --release -p dialer
  bin=target/release/dialer
fi
mkdir -p "$out"
personas_burst="$out/personas-burst.toml"
cat >"$personas_burst" <<'EOF'
# Written by scripts/loadtest.sh: refusals only (no media, no ringing), for setups per second.
[[persona]]
name = "busy"
weight = 2
kind = "busy"

[[persona]]
name = "not_found"
weight = 1
kind = "not_found"

[[persona]]
name = "reject"
weight = 1
kind = "reject"
EOF

# name | bound in seconds | bench arguments
run() {
  local name=$1 bound=$2
  shift 2
  local load waited=0
  # The previous scenario's load fades from the 1-minute average in a minute or two: wait for
  # a quiet machine (at most LOADTEST_QUIET_WAIT seconds, default 240).
  while awk -v l="$(load1)" 'BEGIN { exit !(l >= 0.7) }' && ((waited < ${LOADTEST_QUIET_WAIT:-240})); do
    sleep 5
    waited=$((waited + 5))
  done
  load=$(load1)
  local note=""
  if awk -v l="$load" 'BEGIN { exit !(l >= 0.7) }'; then
    note=" (NOT QUIET: figures of this run are not results)"
  fi
  log "$name: load average $(cut -d' ' -f1-3 /proc/loadavg)$note"
  printf '%s %s load %s%s\n' "$(date -u +%FT%TZ)" "$name" "$(cut -d' ' -f1-3 /proc/loadavg)" "$note" >>"$out/load.txt"
  log "$name: $bin bench $* --json  (bounded at ${bound}s)"
  local rc=0
  timeout --kill-after=10 "$bound" "$bin" bench "$@" --json >"$out/$name.json" 2>"$out/$name.log" || rc=$?
  if ((rc != 0)); then
    log "$name: exit $rc; see $out/$name.log"
    return 0
  fi
  if command -v jq >/dev/null 2>&1; then
    jq -r --arg n "$name" '
      "\($n): placed \(.placed), answered \(.answered), failed \(.failed), setups/s \(.setups_per_s), live peak \(.live.peak); dialer CPU \(.dialer.cpu_s) s (\(if .placed > 0 then (.dialer.cpu_s * 1000 / .placed * 1000 | round / 1000) else "-" end) ms per placed call), \(.dialer.cpu_ms_per_call) ms per answered call, \(.dialer.cpu_ms_per_live_call_minute) ms per live-call-minute, \(.dialer.rss_kib_per_live_call) KiB per live call; spacing p99 \(.send_gap_error_ms.p99 // "-") ms"
      + (if .sipp then "; SIPp \(.sipp.cpu_ms_per_call) ms per call (\(.sipp.calls_successful)/\(.sipp.params.calls) ok), ours/SIPp \(.sipp.ours_over_sipp_cpu_per_call)" else "" end)
      + "; machine busy \(.machine_busy // "-"), CPU stolen by the hypervisor \(.machine_steal // "-")"
      + "; RTP \(.rtp.sockets) sockets, lost \(.rtp.lost_inbound)/\(.rtp.lost_outbound // "-"), \(.rtp.packets_per_recv_syscall) packets per recv and \(.rtp.packets_per_send_syscall) per send syscall"
      + (if .floor then "; floor \(.floor.modes.send_to.cpu_ms_per_live_call_minute) (sendto) / \(.floor.modes.sendmmsg.cpu_ms_per_live_call_minute) (sendmmsg) / \(.floor.modes.shared.cpu_ms_per_live_call_minute // "-") (shared) ms per live-call-minute, ours/floor \(.floor.dialer_over_floor.send_to // "-") / \(.floor.dialer_over_floor.sendmmsg // "-") / \(.floor.dialer_over_floor.shared // "-")" else "" end)
    ' "$out/$name.json" >&2 || true
  fi
}

for s in "${scenarios[@]}"; do
  case $s in
    c2000)
      # 45 + 60 s ours, the same again for SIPp, 2 × 10 s floor, margins.
      run c2000 400 --rate 100 --concurrency 2000 --call-secs 60 --duration 45 --seed 1 --floor
      ;;
    c2000-per-call)
      # The same with a port pair per call on both ends: the "before" of shared sockets.
      run c2000-per-call 400 --rate 100 --concurrency 2000 --call-secs 60 --duration 45 --seed 1 \
        --floor --rtp-sockets per-call
      ;;
    c2000-bare)
      # No VAD, AMD or in-band DTMF: the bare RTP path, to split analysis from transport.
      run c2000-bare 400 --rate 100 --concurrency 2000 --call-secs 60 --duration 45 --seed 1 \
        --analysis false
      ;;
    c500)
      run c500 300 --rate 50 --concurrency 500 --call-secs 30 --duration 20 --seed 1 --sipp --floor
      ;;
    c4000)
      run c4000 400 --rate 100 --concurrency 4000 --call-secs 60 --duration 45 --seed 1 --floor
      ;;
    sustained)
      run sustained 1800 --rate 100 --concurrency 4000 --call-secs 30 --duration 600 --seed 1 --floor
      ;;
    sustained-2t)
      # The same with each end's media clock on two threads.
      run sustained-2t 1800 --rate 100 --concurrency 4000 --call-secs 30 --duration 600 --seed 1 \
        --floor --media-threads 2
      ;;
    c4000-2t)
      run c4000-2t 400 --rate 100 --concurrency 4000 --call-secs 60 --duration 45 --seed 1 \
        --floor --media-threads 2
      ;;
    burst)
      run burst 120 --rate 1000 --concurrency 4000 --call-secs 1 --duration 20 --seed 1 \
        --personas "$personas_burst" --analysis false
      ;;
    smoke)
      run smoke 90 --rate 20 --concurrency 20 --call-secs 2 --duration 2 --seed 1 --sipp --floor --floor-secs 1
      ;;
    *)
      log "unknown scenario $s (c500, c2000, c2000-per-call, c2000-bare, c4000, c4000-2t, sustained, sustained-2t, burst, smoke)"
      exit 2
      ;;
  esac
done
log "reports in $out"
