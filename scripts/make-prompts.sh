#!/usr/bin/env bash
# Renders the spoken audio assets from their texts:
#   config/prompts/<lang>/<id>.txt     -> <id>.wav   what the dialer says to the callee
#   tests/data/voices/<lang>/<id>.txt  -> <id>.wav   how test callees answer (for ASR/VAD tests)
#
# Russian is spoken by festival with the festvox-ru voice msu_ru_nsh_clunits (a few words
# respelled, see RU_RESPELL); English by espeak-ng. Every WAV is then brought to telephone
# quality: 8 kHz, mono, 16-bit signed PCM, band-limited to 300-3400 Hz, pauses longer than
# 0.3 s shortened, leading/trailing silence trimmed to 100 ms, peak normalised to -3 dBFS.
# The prompts (not the callee voices) are also sped up by 10%.
#
# The WAVs are committed; developers run this after editing a text, CI does not run it.
#
# Usage: scripts/make-prompts.sh [--force]
#   default  render a WAV only if it is missing or older than its .txt
#   --force  render every WAV again
#
# Idempotent: installs festival, festvox-ru, sox and espeak-ng with apt-get if missing (as root,
# or through sudo), and the rendering is deterministic (sox runs without dither), so re-running
# it rewrites identical files. Finally it lists every WAV with its duration and peak level and
# the total size, and exits non-zero if any WAV is not 8000 Hz / mono / 16-bit.
set -euo pipefail
cd "$(dirname "$0")/.."
# One locale whatever the developer's: printf and awk then read and write "3.75", not "3,75".
export LC_ALL=C.UTF-8

# Prompts longer than this draw a warning: shorten the text.
MAX_PROMPT_SECS=12

force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "unknown option: $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

log() { printf '== %s\n' "$*"; }

# --- 1. tools ---------------------------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
need_apt=()
for pkg in festival festvox-ru sox espeak-ng; do
  installed "$pkg" || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]}"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- 2. rendering ----------------------------------------------------------------------------

# Respellings applied to Russian text before festival, where its lexicon or letter-to-sound rules
# mispronounce a word (found by listening and by transcribing the results with Whisper). The .txt
# files keep the correct spelling, since tests may use them as the expected transcript. Each
# entry is "word=respelling", matched as a whole word, case-sensitive; "+" before a vowel marks
# the stressed syllable for festvox-ru.
RU_RESPELL=(
  'Пример=Прим+ер'               # the lexicon stresses прИмер (the verb form); we want примЕр
  'Соедините=Сое дин+ите'        # "сое-" comes out as "сыре-"; a split word is heard correctly
  'Соединяю=Сое дин+яю'
  'Бизнес=Бизнэс' 'бизнес=бизнэс' # read with a soft "н-е"; heard as "без не"
  'подробности=подр+обности'     # otherwise heard as "подробенности"
  'подробностей=подр+обностей'
)

# respell_ru TXT OUT: copy TXT to OUT with RU_RESPELL applied.
respell_ru() {
  local args=() pair
  for pair in "${RU_RESPELL[@]}"; do
    args+=(-e "s/(?<!\\w)\\Q${pair%%=*}\\E(?!\\w)/${pair#*=}/g;")
  done
  perl -CSD -Mutf8 -p "${args[@]}" "$1" >"$2"
}

# synth LANG TXT OUT: speak the text of TXT into the WAV OUT (at the engine's own rate).
synth() {
  local lang=$1 txt=$2 out=$3
  case "$lang" in
    ru)
      respell_ru "$txt" "$tmp/respelled.txt"
      text2wave -eval '(voice_msu_ru_nsh_clunits)' -o "$out" "$tmp/respelled.txt"
      ;;
    # espeak-ng's default English voice (British), a little slower than its default 175
    # words/min; of en, en-us and en-gb-x-rp it was the one Whisper transcribed best at 8 kHz.
    en) espeak-ng -v en -s 150 -w "$out" -f "$txt" ;;
    *)
      echo "no voice configured for language '$lang' ($txt)" >&2
      return 1
      ;;
  esac
  # text2wave exits 0 even when it fails to synthesise (e.g. on a character it has no rule
  # for), so check that it wrote a WAV at all.
  soxi "$out" >/dev/null 2>&1 || {
    echo "$lang synthesis failed for $txt" >&2
    return 1
  }
}

# phone RAW OUT TEMPO: telephone quality. Effects run in this order:
#   sinc 300-3400        band-pass to the telephone band (also removes festival's DC offset)
#   tempo -s TEMPO       speed up speech without changing pitch (1 = unchanged)
#   rate 8000            resample (explicit, so the gain below sees the final samples)
#   silence -l 1 ... -1 0.3 ...
#                        cut leading silence and shorten every pause longer than 0.3 s to 0.3 s
#   reverse silence 1 ... reverse
#                        cut the trailing silence (as leading silence of the reversed audio)
#   pad 0.1 0.1          then put back exactly 100 ms of silence at each end
#   gain -n -3           normalise the peak to -3 dBFS
# "Silence" is anything below -45 dBFS for at least 20 ms. -D: no dither, so the output is
# bit-for-bit reproducible and the padding is digital silence.
phone() {
  local raw=$1 out=$2 tempo=$3
  sox -D "$raw" -c 1 -b 16 -e signed-integer "$out" \
    sinc 300-3400 tempo -s "$tempo" rate 8000 \
    silence -l 1 0.02 -45d -1 0.3 -45d \
    reverse silence 1 0.02 -45d reverse \
    pad 0.1 0.1 gain -n -3
}

# check WAV: fail unless the file is 8000 Hz, mono, 16-bit.
check() {
  local wav=$1 got
  got="$(soxi -r "$wav") Hz, $(soxi -c "$wav") ch, $(soxi -b "$wav") bit"
  if [[ $got != "8000 Hz, 1 ch, 16 bit" ]]; then
    echo "bad format for $wav: $got" >&2
    return 1
  fi
}

rendered=0 skipped=0
for dir in config/prompts tests/data/voices; do
  # The dialer's prompts are sped up 10%: festival's Russian voice is slow and a prompt that
  # drags costs callers. Callee voices keep their natural pace.
  if [[ $dir == config/prompts ]]; then tempo=1.1; else tempo=1; fi
  for txt in "$dir"/*/*.txt; do
    [[ -e $txt ]] || continue # no texts at all in this tree
    lang=$(basename "$(dirname "$txt")")
    wav=${txt%.txt}.wav
    if ((!force)) && [[ -e $wav && ! $txt -nt $wav ]]; then
      skipped=$((skipped + 1))
      continue
    fi
    printf '  render %-45s ' "$wav"
    synth "$lang" "$txt" "$tmp/raw.wav"
    phone "$tmp/raw.wav" "$tmp/out.wav" "$tempo"
    check "$tmp/out.wav"
    mv "$tmp/out.wav" "$wav" # only a complete, checked file replaces the old one
    printf '%5.2f s\n' "$(soxi -D "$wav")"
    rendered=$((rendered + 1))
  done
done
log "rendered $rendered, up to date $skipped"

# --- 3. listen-check proxy: every WAV's duration and peak, and the total size ----------------
log "all WAVs (duration, peak level)"
status=0
total=0
for dir in config/prompts tests/data/voices; do
  for wav in "$dir"/*/*.wav; do
    [[ -e $wav ]] || continue
    check "$wav" || status=1
    secs=$(soxi -D "$wav")
    peak=$(sox "$wav" -n stats 2>&1 | awk '/^Pk lev dB/ {print $4}')
    note=
    if [[ $dir == config/prompts ]] && awk -v s="$secs" -v m="$MAX_PROMPT_SECS" 'BEGIN {exit !(s > m)}'; then
      note="  <- longer than ${MAX_PROMPT_SECS} s: shorten the text"
    fi
    printf '  %-45s %5.2f s  peak %6s dBFS%s\n' "$wav" "$secs" "$peak" "$note"
    total=$((total + $(stat -c %s "$wav")))
  done
done
log "total size of WAVs: $total bytes ($(awk -v b="$total" 'BEGIN {printf "%.2f", b / 1048576}') MiB)"
exit "$status"
