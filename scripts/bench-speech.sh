#!/usr/bin/env bash
# End-to-end speech bench: scripted calls (config/scripts/actualization.toml) through the engine
# against `dialer simulate` callees who speak the recorded answers of tests/data/voices/<lang>,
# recognised by the reference ASR server (asr/server.py). Prints `dialer bench`'s report, whose
# "recognition" line is the end-of-utterance → transcript latency (p50/p95) and whose
# "categories" line shows what the classifier made of each answer.
#
#   scripts/bench-speech.sh [--lang ru|en] [--duration SECS] [--rate CALLS_PER_S] [--concurrency N]
#
# Needs scripts/setup-asr.sh to have run (it runs it). Every process it starts is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

lang=ru duration=120 rate=0.25 concurrency=4
while (($#)); do
  case $1 in
    --lang) lang=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    *) echo "usage: $0 [--lang ru|en] [--duration SECS] [--rate CALLS_PER_S] [--concurrency N]" >&2; exit 2 ;;
  esac
done
case $lang in ru|en) ;; *) echo "--lang: ru or en" >&2; exit 2 ;; esac

scripts/setup-asr.sh >/dev/null
cargo build --release -q -p dialer
asr_home=${ASR_HOME:-$HOME/.cache/dialer-asr}
work=$(mktemp -d)
asr_pid=
cleanup() {
  [[ -n $asr_pid ]] && kill "$asr_pid" 2>/dev/null && wait "$asr_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# One speaking persona per category, each answering at a different moment of the question
# (some talk over it, some wait for its end).
{
  delay=14
  for cat in manager_call send_details business_not_now not_interested feedback opt_out; do
    cat <<EOF
[[persona]]
name = "$cat"
weight = 1
kind = "human_speech"
ring_secs = 0.5
delay_secs = $delay
phrase = "$PWD/tests/data/voices/$lang/$cat.wav"
max_secs = 100

EOF
    delay=$((delay + 3))
  done
} >"$work/personas.toml"

"$asr_home/venv/bin/python" asr/server.py --listen 127.0.0.1:0 --model-dir "$asr_home/model" \
  --threads 2 --max-concurrent 1 --queue 32 >"$work/asr.out" 2>"$work/asr.err" &
asr_pid=$!
for _ in $(seq 1 600); do
  grep -q '^ready ' "$work/asr.out" 2>/dev/null && break
  kill -0 "$asr_pid" 2>/dev/null || { cat "$work/asr.err" >&2; exit 1; }
  sleep 0.1
done
addr=$(sed -n 's/^ready //p' "$work/asr.out")
[[ -n $addr ]] || { echo "the ASR server did not become ready" >&2; exit 1; }

target/release/dialer bench --script config/scripts/actualization.toml --lang "$lang" \
  --asr "http://$addr" --personas "$work/personas.toml" --rate "$rate" \
  --concurrency "$concurrency" --duration "$duration" --call-secs 120
