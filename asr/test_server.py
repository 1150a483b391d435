#!/usr/bin/env python3
"""End-to-end tests of asr/server.py over real gRPC on loopback.

Run with the venv that scripts/setup-asr.sh made (it runs this file with --test):

    ~/.cache/dialer-asr/venv/bin/python asr/test_server.py [-v] [unittest args]

Starts one server subprocess on a free 127.0.0.1 port (--max-concurrent 1 --queue 0, so the
overload test can fill it), waits for its "ready" line, and stops it with SIGTERM by PID at the
end. Test voices are made on the fly: Russian with festival + festvox-ru, English with espeak-ng,
both converted to phone quality with sox (8 kHz, 300-3400 Hz). Tests that need a missing tool are
skipped with the reason. The model directory is $ASR_MODEL_DIR, else $ASR_HOME/model, else
~/.cache/dialer-asr/model. ASR_TEST_KEEP=1 keeps the temporary directory (server log, voices).
Ends with a plain "N passed, N failed" line.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import wave
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "gen"))
sys.path.insert(0, str(HERE))

import grpc  # noqa: E402
from asr.v1 import asr_pb2 as pb  # noqa: E402
from asr.v1 import asr_pb2_grpc as pb_grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

import server as srv  # noqa: E402  (codec tables and resampler for unit tests)

READY_TIMEOUT_S = 180
RPC_TIMEOUT_S = 120
MODEL_DIR = os.environ.get("ASR_MODEL_DIR") or os.path.join(
    os.environ.get("ASR_HOME") or os.path.expanduser("~/.cache/dialer-asr"), "model"
)

RU_TEXT = "нет, мне не интересно"
EN_TEXT = "please send the details to my email"
EN_HINTS = [
    "please send the details to my email",
    "connect me to a manager",
    "not interested",
    "call me later",
    "remove my number",
]


# ---------------------------------------------------------------------------------------------
# Audio helpers (no audioop: it is deprecated in 3.11 and gone in 3.13).


def _encoder(table: np.ndarray):
    """G.711 encoder as 'nearest code' over the decoder table (a tiny exact quantiser)."""
    order = np.argsort(table, kind="stable")
    vals = table[order].astype(np.int32)

    def enc(pcm: np.ndarray) -> bytes:
        x = pcm.astype(np.int32)
        i = np.clip(np.searchsorted(vals, x), 1, len(vals) - 1)
        left = vals[i - 1]
        right = vals[i]
        pick = np.where(x - left <= right - x, i - 1, i)
        return order[pick].astype(np.uint8).tobytes()

    return enc


ulaw_encode = _encoder(srv.ULAW_TO_LINEAR)
alaw_encode = _encoder(srv.ALAW_TO_LINEAR)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2, path
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, timeout=60, **kw)


def make_voice(tmp: Path, name: str, text: str, lang: str, rate: int = 8000) -> Path | None:
    """Speaks text into an 8 kHz (or 16 kHz) phone-band 16-bit mono WAV; None if tools lack."""
    raw = tmp / f"{name}.raw.wav"
    out = tmp / f"{name}.{rate}.wav"
    if out.exists():
        return out
    if shutil.which("sox") is None:
        return None
    if lang == "ru":
        if shutil.which("text2wave") is None:
            return None
        run(["text2wave", "-eval", "(voice_msu_ru_nsh_clunits)", "-o", str(raw)],
            input=text.encode())
    else:
        if shutil.which("espeak-ng") is None:
            return None
        run(["espeak-ng", "-v", "en", "-w", str(raw), text])
    run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer",
         str(out), "sinc", "300-3400"])
    return out


def norm(text: str) -> str:
    return " ".join(
        "".join(c if c.isalnum() else " " for c in text.lower().replace("ё", "е")).split()
    )


def config(**kw) -> pb.RecognizeRequest:
    base = dict(language_code="ru", sample_rate_hz=8000, encoding=pb.AUDIO_ENCODING_MULAW)
    base.update(kw)
    return pb.RecognizeRequest(config=pb.RecognitionConfig(**base))


def chunks(data: bytes, size: int):
    for i in range(0, len(data), size):
        yield pb.RecognizeRequest(audio=data[i : i + size])


# ---------------------------------------------------------------------------------------------
# The server under test.


class Server:
    def __init__(self, tmp: Path, *extra: str):
        self.log_path = tmp / "server.stderr.log"
        self.log = open(self.log_path, "wb")
        cmd = [sys.executable, str(HERE / "server.py"), "--listen", "127.0.0.1:0",
               "--model-dir", MODEL_DIR, "--threads", "2", *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log)
        self.lines: queue.Queue = queue.Queue()
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()
        self.addr = self._wait_ready()

    def _pump(self):
        for line in self.proc.stdout:  # ends at EOF when the server exits
            self.lines.put(line.decode(errors="replace").strip())
        self.lines.put(None)

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if line is None:
                break
            if line.startswith("ready "):
                return line.split()[1]
        self.stop()
        raise RuntimeError(f"server not ready in {READY_TIMEOUT_S} s; log:\n{self.stderr()[-3000:]}")

    def stderr(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.pump.join(10)
        self.proc.stdout.close()
        self.log.close()
        return self.proc.returncode


# ---------------------------------------------------------------------------------------------


class CodecTests(unittest.TestCase):
    """Pure-numpy pieces of the server (no model, no network)."""

    def test_g711_tables_match_reference(self):
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                import audioop
        except ImportError:
            self.skipTest("audioop not in this Python")
        b = bytes(range(256))
        self.assertTrue(np.array_equal(np.frombuffer(audioop.ulaw2lin(b, 2), "<i2"), srv.ULAW_TO_LINEAR))
        self.assertTrue(np.array_equal(np.frombuffer(audioop.alaw2lin(b, 2), "<i2"), srv.ALAW_TO_LINEAR))

    def test_g711_roundtrip(self):
        x = (np.sin(np.arange(8000) * 0.05) * 20000).astype(np.int16)
        for enc, table in ((ulaw_encode, srv.ULAW_TO_LINEAR), (alaw_encode, srv.ALAW_TO_LINEAR)):
            y = table[np.frombuffer(enc(x), np.uint8)].astype(np.float64)
            snr = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum((y - x) ** 2))
            self.assertGreater(snr, 30)

    def test_upsampler_passband_and_images(self):
        t8 = np.arange(8000) / 8000
        t16 = np.arange(16000) / 16000
        for f in (300, 1000, 3400):
            y = srv.upsample_2x(np.sin(2 * np.pi * f * t8).astype(np.float32))
            err = np.sqrt(np.mean((y[500:-500] - np.sin(2 * np.pi * f * t16)[500:-500]) ** 2))
            self.assertLess(err, 1e-3, f"{f} Hz")
        y = srv.upsample_2x(np.sin(2 * np.pi * 1000 * t8).astype(np.float32))
        spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
        freqs = np.fft.rfftfreq(y.size, 1 / 16000)
        image = spec[(freqs > 6900) & (freqs < 7100)].max() / spec.max()
        self.assertLess(20 * np.log10(image), -60)  # the 7 kHz image is suppressed


class ServerTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="asr-test-"))
        cls.server = Server(cls.tmp, "--max-concurrent", "1", "--queue", "0")
        cls.channel = grpc.insecure_channel(cls.server.addr)
        cls.stub = pb_grpc.RecognizerStub(cls.channel)
        cls.ru = make_voice(cls.tmp, "ru", RU_TEXT, "ru")
        cls.en = make_voice(cls.tmp, "en", EN_TEXT, "en")

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        if cls.server.proc.poll() is None:
            cls.server.stop()
        if os.environ.get("ASR_TEST_KEEP"):
            print(f"\nkept {cls.tmp} (server.stderr.log, voices)", file=sys.stderr)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # helpers
    def need(self, path):
        if path is None:
            self.skipTest("festival/festvox-ru, espeak-ng or sox missing")
        return path

    def recognize(self, requests, stub=None):
        return list((stub or self.stub).Recognize(iter(requests), timeout=RPC_TIMEOUT_S))

    def final(self, responses) -> pb.SpeechRecognitionResult:
        finals = [r for r in responses if r.results and r.results[0].is_final]
        self.assertEqual(len(finals), 1, responses)
        self.assertIs(responses[-1], finals[0])
        return finals[0].results[0]

    def assertStatus(self, code, requests):
        with self.assertRaises(grpc.RpcError) as cm:
            self.recognize(requests)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        return cm.exception.details()

    # tests
    def test_health_serving(self):
        h = health_pb2_grpc.HealthStub(self.channel)
        for name in ("", "asr.v1.Recognizer"):
            r = h.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
            self.assertEqual(r.status, health_pb2.HealthCheckResponse.SERVING, name)

    def test_russian_mulaw_8k_20ms_chunks(self):
        pcm, rate = read_wav(self.need(self.ru))
        self.assertEqual(rate, 8000)
        mu = ulaw_encode(pcm)
        reqs = [config(language_code="ru", utterance_id="test-ru/1",
                       phrase_hints=["соедините с менеджером", "не интересно", "удалите мой номер"])]
        reqs += list(chunks(mu, 160))  # 20 ms of G.711 at 8 kHz
        resp = self.recognize(reqs)
        res = self.final(resp)
        text = norm(res.alternatives[0].transcript)
        self.assertIn("не интересно", text)
        self.assertIn("нет", text)
        self.assertEqual(res.language_code, "ru")
        self.assertGreater(res.alternatives[0].confidence, 0.2)
        self.assertLessEqual(res.alternatives[0].confidence, 1.0)
        self.assertEqual(resp[-1].utterance_id, "test-ru/1")
        t = resp[-1].timing
        self.assertAlmostEqual(t.audio_duration_ms, pcm.size * 1000 // 8000, delta=1)
        self.assertGreater(t.processing_ms, 0)

    def test_english_alaw_with_hints(self):
        pcm, _ = read_wav(self.need(self.en))
        reqs = [config(language_code="en-US", encoding=pb.AUDIO_ENCODING_ALAW,
                       phrase_hints=EN_HINTS)]
        reqs += list(chunks(alaw_encode(pcm), 160))
        text = norm(self.final(self.recognize(reqs)).alternatives[0].transcript)
        for word in ("send", "details", "email"):
            self.assertIn(word, text)

    def test_linear16_16k_odd_chunks(self):
        path = make_voice(self.tmp, "ru", RU_TEXT, "ru", rate=16000)
        pcm, rate = read_wav(self.need(path))
        self.assertEqual(rate, 16000)
        data = pcm.astype("<i2").tobytes()
        reqs = [config(sample_rate_hz=16000, encoding=pb.AUDIO_ENCODING_LINEAR16)]
        reqs += list(chunks(data, 333))  # splits samples across chunks
        text = norm(self.final(self.recognize(reqs)).alternatives[0].transcript)
        self.assertIn("не интересно", text)

    def test_interim_results(self):
        pcm, _ = read_wav(self.need(self.ru))
        gap = np.zeros(2400, dtype=np.int16)
        mu = ulaw_encode(np.concatenate([pcm, gap, pcm]))
        cut = 2 * 8000 + 800  # just past the 2 s interim threshold

        def gen():
            yield config(interim_results=True)
            yield from chunks(mu[:cut], 160)
            time.sleep(4.0)  # let the interim recognition finish and be sent
            yield from chunks(mu[cut:], 160)

        resp = list(self.stub.Recognize(gen(), timeout=RPC_TIMEOUT_S))
        interims = [r for r in resp if not r.results[0].is_final]
        self.assertGreaterEqual(len(interims), 1, resp)
        self.assertLess(interims[0].timing.audio_duration_ms, 3000)
        text = norm(self.final(resp).alternatives[0].transcript)
        self.assertIn("интересно", text)

    def test_empty_utterance(self):
        res = self.final(self.recognize([config()]))
        self.assertEqual(res.alternatives[0].transcript, "")
        self.assertEqual(res.alternatives[0].confidence, 0.0)

    def test_audio_without_config(self):
        d = self.assertStatus(grpc.StatusCode.INVALID_ARGUMENT,
                              [pb.RecognizeRequest(audio=b"\xff" * 160)] * 3)
        self.assertIn("first message", d)

    def test_no_config_at_all(self):
        self.assertStatus(grpc.StatusCode.INVALID_ARGUMENT, [])

    def test_bad_sample_rate(self):
        d = self.assertStatus(grpc.StatusCode.INVALID_ARGUMENT,
                              [config(sample_rate_hz=44100), pb.RecognizeRequest(audio=b"\xff" * 160)])
        self.assertIn("sample_rate_hz", d)

    def test_bad_encoding_language_and_double_config(self):
        self.assertStatus(grpc.StatusCode.INVALID_ARGUMENT,
                          [config(encoding=pb.AUDIO_ENCODING_UNSPECIFIED)])
        self.assertStatus(grpc.StatusCode.INVALID_ARGUMENT, [config(language_code="de")])
        self.assertStatus(grpc.StatusCode.INVALID_ARGUMENT, [config(), config()])
        self.assertStatus(grpc.StatusCode.INVALID_ARGUMENT,
                          [config(sample_rate_hz=16000, encoding=pb.AUDIO_ENCODING_LINEAR16),
                           pb.RecognizeRequest(audio=b"\x00\x00\x00")])

    def test_audio_too_long(self):
        silence = ulaw_encode(np.zeros(8000, dtype=np.int16))  # 1 s
        reqs = [config()] + [pb.RecognizeRequest(audio=silence)] * 61
        d = self.assertStatus(grpc.StatusCode.INVALID_ARGUMENT, reqs)
        self.assertIn("60", d)

    def test_overload_resource_exhausted(self):
        pcm, _ = read_wav(self.need(self.ru))
        gap = np.zeros(2400, dtype=np.int16)
        long_pcm = np.concatenate([np.concatenate([pcm, gap])] * 8)  # ~20 s of speech
        mu = ulaw_encode(long_pcm)
        a_sent = threading.Event()
        result: dict = {}

        def gen_a():
            yield config(utterance_id="overload-a")
            yield from chunks(mu, 1600)
            a_sent.set()

        def call_a():
            try:
                result["a"] = self.recognize(gen_a())
            except grpc.RpcError as e:
                result["a"] = e

        th = threading.Thread(target=call_a)
        th.start()
        self.assertTrue(a_sent.wait(30))
        time.sleep(0.5)  # A's final recognition (several seconds) now holds the only slot
        t0 = time.monotonic()
        d = self.assertStatus(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              [config(utterance_id="overload-b")] + list(chunks(mu, 1600)))
        self.assertLess(time.monotonic() - t0, 3.0)  # rejected fast, not after waiting
        self.assertIn("busy", d)
        th.join(RPC_TIMEOUT_S)
        self.assertFalse(th.is_alive())
        self.assertIsInstance(result["a"], list, result["a"])
        self.assertIn("интересно", norm(self.final(result["a"]).alternatives[0].transcript))
        # The slot is free again.
        res = self.final(self.recognize([config()] + list(chunks(ulaw_encode(pcm), 160))))
        self.assertIn("интересно", norm(res.alternatives[0].transcript))

    def test_zz_logs_and_graceful_shutdown(self):
        """Runs last: INFO logs carry no transcript; SIGTERM lets the stream in flight finish,
        then the server exits 0."""
        log_text = self.server.stderr()
        self.assertIn('"msg": "final"', log_text)
        for word in ("интересно", "email", "details"):
            self.assertNotIn(word, log_text)
        pcm, _ = read_wav(self.need(self.ru))
        mu = ulaw_encode(np.concatenate([pcm, np.zeros(2400, np.int16)] * 4))
        sent = threading.Event()
        result: dict = {}

        def gen():
            yield config(utterance_id="drain")
            yield from chunks(mu, 1600)
            sent.set()

        def call():
            try:
                result["r"] = self.recognize(gen())
            except grpc.RpcError as e:
                result["r"] = e

        th = threading.Thread(target=call)
        th.start()
        self.assertTrue(sent.wait(30))
        time.sleep(0.3)  # the final recognition is running
        code = self.server.stop()
        th.join(RPC_TIMEOUT_S)
        self.assertIsInstance(result.get("r"), list, result.get("r"))
        self.assertIn("интересно", norm(self.final(result["r"]).alternatives[0].transcript))
        self.assertEqual(code, 0, self.server.stderr()[-2000:])
        self.assertIn('"msg": "stopped"', self.server.stderr())


def main() -> int:
    if not os.path.isfile(os.path.join(MODEL_DIR, "model.bin")):
        print(f"model not found in {MODEL_DIR}: run scripts/setup-asr.sh", file=sys.stderr)
        return 1
    prog = unittest.main(module=__name__, exit=False, verbosity=2, argv=[sys.argv[0], *sys.argv[1:]])
    r = prog.result
    failed = len(r.failures) + len(r.errors) + len(r.unexpectedSuccesses)
    skipped = len(r.skipped)
    passed = r.testsRun - failed - skipped
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 and r.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
