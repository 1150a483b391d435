#!/usr/bin/env bash
# Sets up the Python client of the gRPC control API used by the end-to-end test
# (tests/grpc/e2e.py, run by `cargo nextest run -p integration --test grpc`). Idempotent: a
# second run only checks what is there.
#
#   scripts/setup-grpc-py.sh      venv + pinned packages, stubs generated from proto/dialer/v1
#
# Environment:
#   GRPC_PY_HOME  where the venv lives (default $HOME/.cache/dialer-grpc-py)
#   PYTHON        the Python (>= 3.10) that creates the venv (default python3)
#
# Layout made:
#   $GRPC_PY_HOME/venv/   virtualenv with tests/grpc/requirements.txt (pinned, hash-checked)
#   tests/grpc/gen/       stubs generated from proto/dialer/v1/*.proto (git-ignored)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

GRPC_PY_HOME=${GRPC_PY_HOME:-$HOME/.cache/dialer-grpc-py}
VENV=$GRPC_PY_HOME/venv
PY=$VENV/bin/python
GEN=$REPO/tests/grpc/gen
REQ=tests/grpc/requirements.txt
for arg in "$@"; do
  case $arg in
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "setup-grpc-py: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

step() { printf '== setup-grpc-py: %s\n' "$*"; }
die() { printf 'setup-grpc-py: ERROR: %s\n' "$*" >&2; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# 1. virtualenv -------------------------------------------------------------------------------
step "1/3 virtualenv at $VENV"
mkdir -p "$GRPC_PY_HOME"
if [[ ! -x $PY ]]; then
  "${PYTHON:-python3}" -c 'import sys; assert sys.version_info >= (3, 10), sys.version' \
    || die "need Python >= 3.10 (set PYTHON=...)"
  "${PYTHON:-python3}" -m venv "$VENV" || die "python -m venv failed (Debian: apt-get install python3-venv)"
  echo "   created"
else
  echo "   exists ($("$PY" --version))"
fi

# 2. pinned packages --------------------------------------------------------------------------
step "2/3 packages from $REQ (pinned, hash-checked)"
REQ_SUM=$(sha "$REQ")
STAMP=$VENV/.grpc-requirements.sha256
if [[ -f $STAMP && $(cat "$STAMP") == "$REQ_SUM" ]] \
  && "$PY" -c 'import grpc, grpc_tools, grpc_health, grpc_reflection, google.protobuf' 2>/dev/null; then
  echo "   up to date"
else
  "$PY" -m pip install -q --disable-pip-version-check --require-hashes --only-binary=:all: \
    -r "$REQ" || die "pip install failed"
  echo "$REQ_SUM" >"$STAMP"
  echo "   installed: $("$PY" -m pip freeze 2>/dev/null | grep -Ei '^(grpcio[a-z-]*|protobuf)==' | tr '\n' ' ')"
fi

# 3. stubs ------------------------------------------------------------------------------------
step "3/3 Python stubs in $GEN"
mapfile -t PROTOS < <(find proto/dialer/v1 -name '*.proto' | sort)
((${#PROTOS[@]})) || die "no .proto files under proto/dialer/v1"
fresh=1
if [[ ! -f $GEN/.stamp ]]; then
  fresh=0
else
  for p in "${PROTOS[@]}" "$STAMP"; do
    [[ $GEN/.stamp -nt $p ]] || fresh=0
  done
fi
if ((fresh)); then
  echo "   up to date"
else
  rm -rf "$GEN"; mkdir -p "$GEN"
  "$PY" -m grpc_tools.protoc -I proto --python_out="$GEN" --pyi_out="$GEN" \
    --grpc_python_out="$GEN" "${PROTOS[@]}" || die "protoc failed on ${PROTOS[*]}"
  touch "$GEN/.stamp"
  echo "   generated from ${PROTOS[*]}"
fi

cat <<EOF
== setup-grpc-py: done
   python : $PY
   stubs  : $GEN
   run    : PYTHONPATH=$GEN $PY tests/grpc/e2e.py --help
EOF
