#!/usr/bin/env bash
# Installs what the tests need (idempotent; as root on a fresh Debian machine), then runs the
# gate: rustfmt check, clippy with warnings denied, and every test of the workspace, including
# the real-peer tests (SIPp, Kamailio) on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

need_apt=()
command -v sipp >/dev/null 2>&1 || need_apt+=(sip-tester)
command -v kamailio >/dev/null 2>&1 || need_apt+=(kamailio)
command -v tshark >/dev/null 2>&1 || need_apt+=(tshark)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]}"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  # tshark asks whether non-root users may capture; answer for it.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  # Debian's kamailio package would start a system service; keep it from doing so.
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  $SUDO rm -f /usr/sbin/policy-rc.d
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

log "speech recogniser for the scripted-call tests (venv + Whisper base model, pinned hashes)"
scripts/setup-asr.sh

log "Python gRPC client for the control-API test (venv + pinned grpcio, stubs from proto/dialer/v1)"
scripts/setup-grpc-py.sh

log "rustfmt"
cargo fmt --all --check

log "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "build (the real-peer tests run the dialer binary)"
cargo build --locked -p dialer

log "tests"
cargo nextest run --workspace --locked --no-fail-fast "$@"

log "doc tests"
cargo test --workspace --locked --doc -q
