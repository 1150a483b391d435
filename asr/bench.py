#!/usr/bin/env python3
"""Measures the reference ASR service (asr/server.py) over real gRPC on loopback.

    ~/.cache/dialer-asr/venv/bin/python asr/bench.py [--n 20] [--threads 2] [--no-hints]
        [--realtime] [--json out.json]

Makes phone-quality test voices on the fly (festival + festvox-ru for Russian, espeak-ng for
English; sox to 8 kHz, 300-3400 Hz), starts one server subprocess on a free 127.0.0.1 port and
reports:
  - start-up: process start → "ready", and the server's own import/load/warm-up times;
  - per utterance (sequential, one at a time, streamed as µ-law in 20 ms chunks): server CPU
    seconds (from /proc, the server is otherwise idle), the server's processing wall time, and
    the end-of-audio → final-result latency measured by the client (half-close → final);
  - CPU s and wall ms per second of audio, latency p50/p95, and each transcript.
The server is stopped with SIGTERM by PID at the end. Machine load (loadavg) is printed too:
other work on the two cores skews the wall-clock numbers, less so the CPU seconds.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import test_server as ts  # noqa: E402  (voices, G.711 encoder, server runner, stubs)
from test_server import pb, pb_grpc  # noqa: E402
import grpc  # noqa: E402

RU_PHRASES = [
    "соедините меня с менеджером",
    "пришлите подробности на почту",
    "сейчас не актуально, перезвоните позже",
    "нет, мне не интересно",
    "хочу оставить отзыв",
    "удалите мой номер и больше не звоните",
    "да, я согласен",
    "мне не нравятся ваши цены",
]
# Hints as a campaign script would give them: its categories' phrases, not the test sentences.
RU_HINTS = [
    "менеджер", "соедините с оператором", "пришлите на почту", "подробности", "не актуально",
    "перезвоните позже", "не интересно", "отзыв", "удалите мой номер", "не звоните", "согласен",
]
EN_PHRASES = ["please send the details to my email", "call me back later"]
EN_HINTS = ["send the details to my email", "call me later", "not interested", "manager"]


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v)


def wait_idle(max_wait_s: float) -> float:
    """Waits (bounded) until the machine is ~idle: busy < 0.2 core in three 2 s samples in a
    row. Returns the busy cores of the last sample."""
    ncpu = os.cpu_count() or 1
    deadline = time.monotonic() + max_wait_s
    quiet = 0
    while True:
        b0, t0 = cpu_jiffies()
        time.sleep(2)
        b1, t1 = cpu_jiffies()
        busy = ncpu * (b1 - b0) / max(1, t1 - t0)
        quiet = quiet + 1 if busy < 0.2 else 0
        if quiet >= 3 or time.monotonic() >= deadline:
            return busy
        if quiet == 0:
            print(f"waiting for an idle machine: {busy:.2f} cores busy", flush=True)


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def pct(xs, p):
    return float(np.percentile(np.asarray(xs, dtype=np.float64), p)) if xs else float("nan")


def recognize(stub, mu: bytes, lang: str, hints, realtime: bool, uid: str):
    """Streams one utterance; returns (final response, client latency s from half-close)."""
    mark = {}

    def gen():
        yield pb.RecognizeRequest(config=pb.RecognitionConfig(
            language_code=lang, sample_rate_hz=8000, encoding=pb.AUDIO_ENCODING_MULAW,
            phrase_hints=hints, utterance_id=uid))
        t_next = time.monotonic()
        for i in range(0, len(mu), 160):
            if realtime:
                t_next += 0.02
                delay = t_next - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield pb.RecognizeRequest(audio=mu[i : i + 160])
        mark["eoa"] = time.monotonic()  # the generator ends → gRPC half-closes

    final = None
    for r in stub.Recognize(gen(), timeout=120):
        if r.results and r.results[0].is_final:
            final = r
            mark["final"] = time.monotonic()
    return final, mark["final"] - mark["eoa"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20, help="utterances for the latency figures")
    ap.add_argument("--threads", type=int, default=2, help="server --threads")
    ap.add_argument("--parallel", type=int, default=1,
                    help="client streams at once (= server --max-concurrent); 1 = sequential")
    ap.add_argument("--no-hints", action="store_true", help="send no phrase hints")
    ap.add_argument("--realtime", action="store_true", help="pace audio at 20 ms per chunk")
    ap.add_argument("--hint-joiner", default=" ", help="server --hint-joiner")
    ap.add_argument("--json", help="also write the results as JSON here")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="S",
                    help="first wait up to S seconds for other CPU load to stop")
    a = ap.parse_args()
    if not 1 <= a.n <= 500:
        ap.error("--n must be 1..500")
    if not 1 <= a.parallel <= 16:
        ap.error("--parallel must be 1..16")

    if a.wait_idle > 0:
        wait_idle(min(a.wait_idle, 3600))
    out = {"loadavg_start": loadavg(), "threads": a.threads, "parallel": a.parallel,
           "hints": not a.no_hints}
    with tempfile.TemporaryDirectory(prefix="asr-bench-") as tmpd:
        tmp = Path(tmpd)
        voices = []
        for i, text in enumerate(RU_PHRASES):
            p = ts.make_voice(tmp, f"ru{i}", text, "ru")
            if p is None:
                print("festival/festvox-ru/sox missing (scripts/setup-asr.sh --test installs them)")
                return 1
            voices.append(("ru", text, p))
        for i, text in enumerate(EN_PHRASES):
            p = ts.make_voice(tmp, f"en{i}", text, "en")
            if p is not None:
                voices.append(("en", text, p))

        t0 = time.monotonic()
        server = ts.Server(tmp, "--threads", str(a.threads), "--max-concurrent", str(a.parallel),
                           "--queue", str(a.n), "--hint-joiner", a.hint_joiner)
        out["startup_to_ready_s"] = round(time.monotonic() - t0, 3)
        for line in server.stderr().splitlines():
            if '"msg": "serving"' in line:
                j = json.loads(line)
                out.update(import_ms=j.get("import_ms"), model_load_ms=j.get("load_ms"),
                           warmup_ms=j.get("warmup_ms"))
        try:
            channel = grpc.insecure_channel(server.addr)
            stub = pb_grpc.RecognizerStub(channel)
            rows = []
            j0, s0, c0_self = cpu_jiffies(), proc_cpu_s(server.proc.pid), time.process_time()
            w0 = time.monotonic()
            def one(k: int) -> dict:
                lang, text, path = voices[k % len(voices)]
                pcm, _ = ts.read_wav(path)
                mu = ts.ulaw_encode(pcm)
                hints = [] if a.no_hints else (RU_HINTS if lang == "ru" else EN_HINTS)
                c0 = proc_cpu_s(server.proc.pid)
                final, lat = recognize(stub, mu, lang, hints, a.realtime, f"bench/{k}")
                cpu = proc_cpu_s(server.proc.pid) - c0
                res = final.results[0]
                return dict(
                    lang=lang, said=text, heard=res.alternatives[0].transcript,
                    confidence=round(res.alternatives[0].confidence, 3),
                    audio_s=round(pcm.size / 8000, 2),
                    # per-utterance CPU only means something when utterances run one at a time
                    cpu_s=round(cpu, 3) if a.parallel == 1 else None,
                    processing_ms=final.timing.processing_ms,
                    queue_ms=final.timing.queue_ms,
                    latency_ms=round(lat * 1000, 1))

            if a.parallel == 1:
                rows = [one(k) for k in range(a.n)]
            else:
                with concurrent.futures.ThreadPoolExecutor(a.parallel) as ex:
                    rows = list(ex.map(one, range(a.n)))
            j1, s1, c1_self = cpu_jiffies(), proc_cpu_s(server.proc.pid), time.process_time()
            ncpu = os.cpu_count() or 1
            wall_all = time.monotonic() - w0
            busy_all = ncpu * (j1[0] - j0[0]) / max(1, j1[1] - j0[1])
            ours = ((s1 - s0) + (c1_self - c0_self)) / max(1e-9, wall_all)
            out["other_load_cores"] = round(max(0.0, busy_all - ours), 2)
            out["server_cpu_s"] = round(s1 - s0, 2)
            out["wall_s"] = round(wall_all, 2)
            channel.close()
        finally:
            code = server.stop()
        out["server_exit"] = code
    out["loadavg_end"] = loadavg()

    audio = sum(r["audio_s"] for r in rows)
    lats = [r["latency_ms"] for r in rows]
    out.update(
        utterances=len(rows),
        audio_s_total=round(audio, 2),
        cpu_s_per_audio_s=round(out["server_cpu_s"] / audio, 3),
        cpu_s_per_utterance=round(out["server_cpu_s"] / len(rows), 3),
        utterances_per_s=round(len(rows) / out["wall_s"], 2),
        wall_ms_per_audio_s=round(sum(r["processing_ms"] for r in rows) / audio, 1),
        latency_ms_p50=round(pct(lats, 50), 1),
        latency_ms_p95=round(pct(lats, 95), 1),
        latency_ms_max=round(max(lats), 1),
        rows=rows,
    )

    print(f"load avg at start {out['loadavg_start']}, end {out['loadavg_end']}; other processes "
          f"used {out.get('other_load_cores')} of {os.cpu_count()} cores during the run")
    print(f"start-up to ready {out['startup_to_ready_s']} s (import {out.get('import_ms')} ms, "
          f"model load {out.get('model_load_ms')} ms, warm-up {out.get('warmup_ms')} ms)")
    print(f"{'audio s':>7} {'cpu s':>6} {'queue ms':>8} {'proc ms':>7} {'lat ms':>7} {'conf':>5}"
          "  said → heard")
    seen = set()
    for r in rows:
        mark = "" if r["said"] not in seen else " (repeat)"
        seen.add(r["said"])
        cpu = "-" if r["cpu_s"] is None else f"{r['cpu_s']:.2f}"
        print(f"{r['audio_s']:7.2f} {cpu:>6} {r['queue_ms']:8d} {r['processing_ms']:7d} "
              f"{r['latency_ms']:7.0f} {r['confidence']:5.2f}  {r['said']} → {r['heard']}{mark}")
    print(f"{len(rows)} utterances ({a.parallel} at a time, server --threads {a.threads}), "
          f"{audio:.1f} s audio in {out['wall_s']} s ({out['utterances_per_s']} utt/s): "
          f"{out['cpu_s_per_utterance']} CPU s per utterance = "
          f"{out['cpu_s_per_audio_s']} CPU s per audio s, "
          f"{out['wall_ms_per_audio_s']} wall ms per audio s; "
          f"end-of-audio → final p50 {out['latency_ms_p50']} ms, p95 {out['latency_ms_p95']} ms, "
          f"max {out['latency_ms_max']} ms")
    if a.json:
        Path(a.json).write_text(json.dumps(out, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
