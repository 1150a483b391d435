#!/usr/bin/env python3
"""Reference speech-recognition service speaking proto/asr/v1/asr.proto (package asr.v1).

faster-whisper (CTranslate2) with a Whisper "base" model on CPU. One `Recognize` stream is one
utterance: a RecognitionConfig, audio chunks (G.711 µ-law/A-law or LINEAR16 at 8/16 kHz), then
the client half-closes and gets the final result. See asr/README.md.

    python asr/server.py --listen 127.0.0.1:50061 --model-dir ~/.cache/dialer-asr/model \
        --threads 2 --max-concurrent 1 --queue 8

Prints exactly one line "ready HOST:PORT" to stdout once the model is loaded and the health
service says SERVING. Logs are JSON lines on stderr; transcripts appear only at DEBUG.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import logging
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SERVICE_NAME = "asr.v1.Recognizer"
LANGUAGES = ("ru", "uk", "en")
SAMPLE_RATES = (8000, 16000)
MODEL_RATE = 16000
MAX_HINTS = 200
MAX_HINT_CHARS = 200
MAX_PROMPT_CHARS = 4000
MAX_UTTERANCE_ID_CHARS = 128
MAX_NEW_TOKENS_CAP = 216  # + the longest prompt (223 + 5 tokens) <= 448, Whisper's context

log = logging.getLogger("asr")


# --------------------------------------------------------------------------------------------
# Logging: one JSON object per line on stderr.


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    log.setLevel(level.upper())


def info(msg: str, **fields) -> None:
    log.info(msg, extra={"fields": fields})


# --------------------------------------------------------------------------------------------
# Audio: G.711 decoding and 8 kHz → 16 kHz resampling (numpy only).


def _ulaw_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exp = (u >> 4) & 0x07
    mag = (((u & 0x0F) << 3) + 0x84) << exp
    mag = mag - 0x84
    return np.where(u & 0x80, -mag, mag).astype(np.int16)


def _alaw_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exp = (a >> 4) & 0x07
    mant = a & 0x0F
    mag = np.where(exp == 0, (mant << 4) + 8, ((mant << 4) + 0x108) << np.maximum(exp - 1, 0))
    return np.where(a & 0x80, mag, -mag).astype(np.int16)


ULAW_TO_LINEAR = _ulaw_table()
ALAW_TO_LINEAR = _alaw_table()


def _halfband_kernel(half_taps: int = 32, beta: float = 8.0) -> np.ndarray:
    """Kaiser-windowed sinc low-pass for 2x interpolation, cutoff at the old Nyquist (fs_new/4).

    Gain 2 (compensates the zero stuffing). It is a half-band filter: the centre tap is 1 and
    every other even-offset tap is 0, so the original samples pass through unchanged and only
    the new in-between samples are interpolated.
    """
    n = np.arange(-2 * half_taps, 2 * half_taps + 1, dtype=np.float64)
    h = np.sinc(n / 2.0) * np.kaiser(len(n), beta)
    return h.astype(np.float32)


HALFBAND = _halfband_kernel()


def upsample_2x(x: np.ndarray) -> np.ndarray:
    """8 kHz float32 → 16 kHz float32 with a windowed-sinc (polyphase) interpolator."""
    if x.size == 0:
        return x.astype(np.float32)
    y = np.empty(2 * x.size, dtype=np.float32)
    y[0::2] = x
    # Odd outputs: between x[i] and x[i+1]; the odd-offset taps of the kernel are the phase.
    odd = HALFBAND[1::2]  # taps at offsets -2K+1, ..., 2K-1 (step 2)
    y[1::2] = np.convolve(x, odd[::-1], mode="full")[len(odd) // 2 : len(odd) // 2 + x.size]
    return y


def pcm_to_model_input(pcm: np.ndarray, rate: int) -> np.ndarray:
    """int16 PCM at `rate` → float32 in [-1, 1) at 16 kHz."""
    x = pcm.astype(np.float32) / 32768.0
    if rate == MODEL_RATE:
        return x
    if rate == 8000:
        return upsample_2x(x)
    raise ValueError(f"unsupported rate {rate}")


# --------------------------------------------------------------------------------------------
# Recognition slots: at most `slots` transcriptions run; at most `queue` more wait.


class Slots:
    def __init__(self, slots: int, queue: int, pool: concurrent.futures.Executor):
        self.slots = slots
        self.queue = queue
        self.pool = pool
        self.sem = asyncio.Semaphore(slots)
        self.pending = 0  # running + waiting

    def free_now(self) -> bool:
        return self.pending < self.slots

    def can_admit(self, own_in_flight: int = 0) -> bool:
        return self.pending - own_in_flight < self.slots + self.queue

    async def run(self, fn, *args):
        """Runs fn(*args) in the pool under a slot. Returns (result, seconds queued).

        The slot is released when the worker thread finishes, even if the awaiting task was
        cancelled meanwhile, so the CPU bound holds.
        """
        self.pending += 1
        t0 = time.monotonic()
        try:
            await self.sem.acquire()
        except BaseException:
            self.pending -= 1
            raise
        queued = time.monotonic() - t0
        try:
            fut = asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
        except BaseException:
            self.sem.release()
            self.pending -= 1
            raise

        def done(_f):
            self.sem.release()
            self.pending -= 1

        fut.add_done_callback(done)
        return await asyncio.shield(fut), queued


# --------------------------------------------------------------------------------------------
# The model.


@dataclass
class Transcript:
    text: str
    confidence: float
    no_speech: float
    seconds: float  # wall time in the worker


class Engine:
    def __init__(self, model_dir: str, threads: int, workers: int):
        self.model_dir = model_dir
        self.threads = threads
        self.workers = workers
        self.model = None

    def load(self) -> tuple[float, float]:
        """Imports faster-whisper and loads the model. Returns (import s, load s)."""
        t0 = time.perf_counter()
        from faster_whisper import WhisperModel

        t1 = time.perf_counter()
        self.model = WhisperModel(
            self.model_dir,
            device="cpu",
            compute_type="int8",
            cpu_threads=self.threads,
            num_workers=self.workers,
            local_files_only=True,
        )
        return t1 - t0, time.perf_counter() - t1

    def transcribe(self, pcm: np.ndarray, rate: int, language: str, prompt: str) -> Transcript:
        t0 = time.perf_counter()
        audio = pcm_to_model_input(pcm, rate)
        # Speech is ~4-5 tokens/s in ru/uk/en; a bound of ~2.5x that (per 30 s window) stops a
        # greedy-decoding loop early without cutting real speech. Prompt (<= 228 tokens) plus
        # this stays within Whisper's 448-token context.
        window_s = min(audio.size / MODEL_RATE, 30.0)
        max_new = min(MAX_NEW_TOKENS_CAP, 24 + int(12 * window_s))
        segments, _info = self.model.transcribe(
            audio,
            language=language,
            beam_size=1,
            temperature=0.0,
            without_timestamps=True,
            condition_on_previous_text=False,
            initial_prompt=prompt or None,
            vad_filter=False,
            max_new_tokens=max_new,
        )
        texts, weights, logprobs, nospeech = [], [], [], []
        for seg in segments:  # bounded: at most ~2 segments per 30 s window, audio <= limit
            t = seg.text.strip()
            if t:
                texts.append(t)
            if len(seg.tokens) >= max_new:
                log.warning("token limit reached (decoding loop?)",
                            extra={"fields": {"max_new_tokens": max_new}})
            w = max(1, len(seg.tokens))
            weights.append(w)
            logprobs.append(seg.avg_logprob)
            nospeech.append(seg.no_speech_prob)
        text = " ".join(texts)
        if weights:
            wsum = float(sum(weights))
            avg_lp = sum(w * lp for w, lp in zip(weights, logprobs)) / wsum
            ns = sum(w * p for w, p in zip(weights, nospeech)) / wsum
        else:
            avg_lp, ns = -math.inf, 1.0
        conf = 0.0
        if text:
            conf = min(1.0, max(0.0, math.exp(avg_lp))) * (1.0 - min(1.0, max(0.0, ns)))
        return Transcript(text, conf, float(ns), time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------
# gRPC service.


class BadRequest(Exception):
    pass


def normalise_language(code: str) -> str:
    primary = code.strip().replace("_", "-").split("-", 1)[0].lower()
    if primary not in LANGUAGES:
        raise BadRequest(f"language_code {code!r} not supported (use one of {', '.join(LANGUAGES)})")
    return primary


def build_prompt(hints, joiner: str = " ") -> str:
    if len(hints) > MAX_HINTS:
        raise BadRequest(f"too many phrase_hints: {len(hints)} > {MAX_HINTS}")
    parts = []
    for h in hints:
        if len(h) > MAX_HINT_CHARS:
            raise BadRequest(f"a phrase hint is longer than {MAX_HINT_CHARS} characters")
        h = " ".join(h.split())
        if h:
            parts.append(h)
    prompt = joiner.join(parts)
    if len(prompt) > MAX_PROMPT_CHARS:
        raise BadRequest(f"phrase_hints total {len(prompt)} characters > {MAX_PROMPT_CHARS}")
    return prompt


def make_servicer(pb, pb_grpc, grpc, engine: Engine, slots: Slots, args):
    class Recognizer(pb_grpc.RecognizerServicer):
        def __init__(self):
            self.ready = False
            self.draining = False
            self.open_streams = 0
            self.seq = 0

        async def Recognize(self, request_iterator, context):
            if not self.ready or self.draining:
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    "starting (model not loaded)" if not self.ready else "shutting down",
                )
            if self.open_streams >= args.max_streams:
                info("rejected", reason="max_streams", open_streams=self.open_streams)
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"too many open streams ({args.max_streams})",
                )
            self.open_streams += 1
            self.seq += 1
            try:
                await self._recognize(request_iterator, context, self.seq)
            finally:
                self.open_streams -= 1

        async def _recognize(self, request_iterator, context, seq):
            t_open = time.monotonic()
            cfg = None
            lang = prompt = ""
            rate = 0
            encoding = 0
            uid = ""
            chunks: list[np.ndarray] = []
            carry = b""
            n_samples = 0
            since_interim = 0
            interim_task: asyncio.Task | None = None
            n_msgs = 0
            max_samples = 0

            async def bad(detail: str):
                info("invalid_argument", utterance_id=uid, seq=seq, detail=detail)
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, detail)

            def response(tr: Transcript, is_final: bool, audio_samples: int, queued: float):
                return pb.RecognizeResponse(
                    utterance_id=uid,
                    results=[
                        pb.SpeechRecognitionResult(
                            alternatives=[
                                pb.SpeechRecognitionAlternative(
                                    transcript=tr.text, confidence=tr.confidence
                                )
                            ],
                            is_final=is_final,
                            no_speech_probability=tr.no_speech,
                            language_code=lang,
                        )
                    ],
                    timing=pb.RecognitionTiming(
                        audio_duration_ms=int(audio_samples * 1000 // rate),
                        processing_ms=int(round(tr.seconds * 1000)),
                        queue_ms=int(round(queued * 1000)),
                    ),
                )

            async def interim(pcm: np.ndarray):
                try:
                    tr, queued = await slots.run(engine.transcribe, pcm, rate, lang, prompt)
                    log.debug(
                        "interim",
                        extra={"fields": {"utterance_id": uid, "transcript": tr.text}},
                    )
                    await context.write(response(tr, False, pcm.size, queued))
                except asyncio.CancelledError:
                    raise
                except Exception:  # interim results are best effort
                    log.warning("interim failed", exc_info=True, extra={"fields": {"seq": seq}})

            try:
                async for req in request_iterator:
                    n_msgs += 1
                    if n_msgs > args.max_messages:
                        await bad(f"more than {args.max_messages} messages in one stream")
                    kind = req.WhichOneof("request")
                    if kind == "config":
                        if cfg is not None:
                            await bad("config sent twice; it must be the first message only")
                        cfg = req.config
                        uid = cfg.utterance_id
                        if len(uid) > MAX_UTTERANCE_ID_CHARS:
                            uid = uid[:MAX_UTTERANCE_ID_CHARS]
                            await bad(f"utterance_id longer than {MAX_UTTERANCE_ID_CHARS} characters")
                        try:
                            lang = normalise_language(cfg.language_code)
                            prompt = build_prompt(cfg.phrase_hints, args.hint_joiner)
                        except BadRequest as e:
                            await bad(str(e))
                        rate = cfg.sample_rate_hz
                        if rate not in SAMPLE_RATES:
                            await bad(f"sample_rate_hz {rate} not supported (8000 or 16000)")
                        encoding = cfg.encoding
                        if encoding not in (
                            pb.AUDIO_ENCODING_LINEAR16,
                            pb.AUDIO_ENCODING_MULAW,
                            pb.AUDIO_ENCODING_ALAW,
                        ):
                            await bad(f"encoding {encoding} not supported (LINEAR16, MULAW, ALAW)")
                        max_samples = int(args.max_audio_seconds * rate)
                        info(
                            "stream",
                            utterance_id=uid,
                            seq=seq,
                            language=lang,
                            sample_rate_hz=rate,
                            encoding=pb.AudioEncoding.Name(encoding),
                            hints=len(cfg.phrase_hints),
                            interim=cfg.interim_results,
                        )
                        continue
                    if kind != "audio":
                        await bad("empty request message (neither config nor audio)")
                    if cfg is None:
                        await bad("the first message must carry the RecognitionConfig")
                    data = req.audio
                    if not data:
                        continue
                    if encoding == pb.AUDIO_ENCODING_LINEAR16:
                        data = carry + data
                        even = len(data) & ~1
                        carry = data[even:]
                        pcm = np.frombuffer(data[:even], dtype="<i2").astype(np.int16)
                    elif encoding == pb.AUDIO_ENCODING_MULAW:
                        pcm = ULAW_TO_LINEAR[np.frombuffer(data, dtype=np.uint8)]
                    else:
                        pcm = ALAW_TO_LINEAR[np.frombuffer(data, dtype=np.uint8)]
                    if n_samples + pcm.size > max_samples:
                        await bad(f"audio longer than {args.max_audio_seconds:g} s")
                    chunks.append(pcm)
                    n_samples += pcm.size
                    since_interim += pcm.size
                    if (
                        cfg.interim_results
                        and since_interim >= args.interim_every * rate
                        and (interim_task is None or interim_task.done())
                        and slots.free_now()
                    ):
                        since_interim = 0
                        chunks = [np.concatenate(chunks)]
                        interim_task = asyncio.create_task(interim(chunks[0]))

                # Half-close: end of utterance.
                if cfg is None:
                    await bad("stream ended without a RecognitionConfig")
                if carry:
                    await bad("LINEAR16 audio has an odd number of bytes")
                own = 0
                if interim_task is not None and not interim_task.done():
                    interim_task.cancel()  # its worker thread may still hold a slot
                    own = 1
                t_end = time.monotonic()
                pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
                if pcm.size == 0:
                    tr, queued = Transcript("", 0.0, 1.0, 0.0), 0.0
                else:
                    if not slots.can_admit(own_in_flight=own):
                        info(
                            "rejected",
                            reason="busy",
                            utterance_id=uid,
                            seq=seq,
                            pending=slots.pending,
                        )
                        await context.abort(
                            grpc.StatusCode.RESOURCE_EXHAUSTED,
                            f"all {slots.slots} recognition slots busy and queue "
                            f"({slots.queue}) full",
                        )
                    try:
                        tr, queued = await slots.run(engine.transcribe, pcm, rate, lang, prompt)
                    except asyncio.CancelledError:
                        raise
                    except Exception as e:
                        log.error("recognition failed", exc_info=True,
                                  extra={"fields": {"utterance_id": uid, "seq": seq}})
                        await context.abort(grpc.StatusCode.INTERNAL,
                                            f"recognition failed: {type(e).__name__}")
                await context.write(response(tr, True, pcm.size, queued))
                audio_s = pcm.size / rate
                info(
                    "final",
                    utterance_id=uid,
                    seq=seq,
                    audio_ms=int(audio_s * 1000),
                    queue_ms=int(queued * 1000),
                    processing_ms=int(tr.seconds * 1000),
                    rtf=round(tr.seconds / audio_s, 3) if audio_s else None,
                    latency_ms=int((time.monotonic() - t_end) * 1000),
                    stream_ms=int((time.monotonic() - t_open) * 1000),
                    chars=len(tr.text),
                    confidence=round(tr.confidence, 3),
                    no_speech=round(tr.no_speech, 3),
                )
                log.debug("transcript", extra={"fields": {"utterance_id": uid, "transcript": tr.text}})
            finally:
                if interim_task is not None and not interim_task.done():
                    interim_task.cancel()

    return Recognizer()


# --------------------------------------------------------------------------------------------
# Main.


def parse_args(argv=None):
    asr_home = os.environ.get("ASR_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache", "dialer-asr"
    )
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", default="127.0.0.1:50061", help="HOST:PORT (port 0 = any free)")
    p.add_argument("--model-dir", default=os.path.join(asr_home, "model"),
                   help="CTranslate2 Whisper model directory (default $ASR_HOME/model)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads per transcription")
    p.add_argument("--max-concurrent", type=int, default=1,
                   help="transcriptions running at once (model workers)")
    p.add_argument("--queue", type=int, default=8,
                   help="finished utterances that may wait for a slot; beyond: RESOURCE_EXHAUSTED")
    p.add_argument("--max-streams", type=int, default=256,
                   help="open streams at once; beyond: RESOURCE_EXHAUSTED at open")
    p.add_argument("--max-audio-seconds", type=float, default=60.0,
                   help="longest utterance accepted; beyond: INVALID_ARGUMENT")
    p.add_argument("--max-messages", type=int, default=100_000, help="messages per stream")
    p.add_argument("--interim-every", type=float, default=2.0,
                   help="seconds of new audio between interim results (when asked for)")
    p.add_argument("--grace", type=float, default=10.0,
                   help="seconds in-flight streams get on SIGTERM/SIGINT")
    p.add_argument("--hint-joiner", default=" ",
                   help="string between phrase hints in the initial prompt (e.g. ', ')")
    p.add_argument("--no-warmup", action="store_true", help="skip the warm-up transcription")
    p.add_argument("--gen-dir", default=str(HERE / "gen"),
                   help="generated stubs (scripts/setup-asr.sh makes them)")
    p.add_argument("--log-level", default=os.environ.get("ASR_LOG_LEVEL", "INFO"),
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="DEBUG also logs transcripts (personal data)")
    a = p.parse_args(argv)
    for name in ("threads", "max_concurrent", "max_streams", "max_messages"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if a.queue < 0:
        p.error("--queue must be >= 0")
    if a.max_audio_seconds <= 0 or a.interim_every <= 0:
        p.error("--max-audio-seconds and --interim-every must be > 0")
    return a


async def serve(args) -> int:
    sys.path.insert(0, args.gen_dir)
    try:
        import grpc
        from asr.v1 import asr_pb2 as pb
        from asr.v1 import asr_pb2_grpc as pb_grpc
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    except ImportError as e:
        log.error("cannot import gRPC stubs or runtime; run scripts/setup-asr.sh",
                  extra={"fields": {"error": str(e), "gen_dir": args.gen_dir}})
        return 1

    for f in ("model.bin", "config.json", "tokenizer.json", "vocabulary.json"):
        if not os.path.isfile(os.path.join(args.model_dir, f)):
            log.error("model file missing; run scripts/setup-asr.sh",
                      extra={"fields": {"model_dir": args.model_dir, "file": f}})
            return 1

    host, _, port_s = args.listen.rpartition(":")
    if not host or not port_s.isdigit():
        log.error("--listen must be HOST:PORT", extra={"fields": {"listen": args.listen}})
        return 2

    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=args.max_concurrent, thread_name_prefix="asr-worker"
    )
    engine = Engine(args.model_dir, args.threads, args.max_concurrent)
    slots = Slots(args.max_concurrent, args.queue, pool)
    servicer = make_servicer(pb, pb_grpc, grpc, engine, slots, args)
    health_servicer = health.aio.HealthServicer()

    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 0),  # a busy port is an error, not a shared one
            ("grpc.max_receive_message_length", 4 * 1024 * 1024),
        ],
        maximum_concurrent_rpcs=args.max_streams + 16,  # health checks still get through
    )
    pb_grpc.add_RecognizerServicer_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
    SERVING = health_pb2.HealthCheckResponse.SERVING
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, NOT_SERVING)
    try:
        port = server.add_insecure_port(args.listen)
    except RuntimeError as e:
        port = 0
        err = str(e)
    else:
        err = ""
    if not port:
        log.error("cannot listen", extra={"fields": {"listen": args.listen, "error": err}})
        return 1
    await server.start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    info("loading model", model_dir=args.model_dir, threads=args.threads,
         workers=args.max_concurrent)
    load_task = loop.run_in_executor(pool, engine.load)
    done, _ = await asyncio.wait(
        [load_task, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED
    )
    if load_task not in done:
        info("stopped while loading")
        await server.stop(0)
        pool.shutdown(wait=True, cancel_futures=True)
        return 0
    try:
        import_s, load_s = load_task.result()
    except Exception as e:
        log.error("model load failed", exc_info=True, extra={"fields": {"error": str(e)}})
        await server.stop(0)
        return 1
    warm_s = 0.0
    if not args.no_warmup:
        t0 = time.perf_counter()
        await loop.run_in_executor(
            pool, engine.transcribe, np.zeros(8000, dtype=np.int16), 8000, "en", ""
        )
        warm_s = time.perf_counter() - t0
    servicer.ready = True
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, SERVING)
    info("serving", listen=f"{host}:{port}", import_ms=int(import_s * 1000),
         load_ms=int(load_s * 1000),
         warmup_ms=int(warm_s * 1000), max_concurrent=args.max_concurrent, queue=args.queue)
    print(f"ready {host}:{port}", flush=True)

    await stop.wait()
    info("shutting down", grace_s=args.grace, open_streams=servicer.open_streams)
    servicer.draining = True
    await health_servicer.enter_graceful_shutdown()
    await server.stop(args.grace)
    pool.shutdown(wait=True, cancel_futures=True)
    info("stopped")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
