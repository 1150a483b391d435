//! Client of the speech-recognition service (`proto/asr/v1/asr.proto`): one `Recognize` stream
//! per utterance, as production voice platforms use a recogniser that scales on its own.
//!
//! The engine endpoints speech itself (VAD in the media layer) and sends each finished
//! utterance: the config message, then the audio as 16-bit PCM at 8 kHz in 100 ms chunks, then
//! a half-close; the server answers with one final result. Every call has a deadline, and any
//! failure maps to an [`AsrError`] the dialogue can act on (fall back to DTMF when the service
//! is unavailable).

use std::time::{Duration, Instant};

use script::Lang;
use tonic::transport::{Channel, Endpoint};

/// Generated from `proto/asr/v1/asr.proto`.
#[allow(clippy::all, missing_debug_implementations)]
pub mod pb {
    tonic::include_proto!("asr.v1");
}

use pb::recognizer_client::RecognizerClient;

/// Where the recogniser is and how long to wait for it.
#[derive(Debug, Clone)]
pub struct AsrConfig {
    /// `http://host:port` of the `asr.v1.Recognizer` service.
    pub endpoint: String,
    /// Most time from the end of an utterance to its transcript.
    pub timeout: Duration,
    /// Most time to open the connection.
    pub connect_timeout: Duration,
}

impl AsrConfig {
    pub fn new(endpoint: impl Into<String>) -> AsrConfig {
        AsrConfig {
            endpoint: endpoint.into(),
            timeout: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(2),
        }
    }
}

/// The recogniser's answer for one utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// Personal data: never log it above debug.
    pub text: String,
    pub confidence: f32,
    pub no_speech_probability: f32,
    /// Audio the result covers.
    pub audio: Duration,
    /// The server's own processing and queueing time.
    pub processing: Duration,
    pub queued: Duration,
    /// From sending the utterance to the final result, as the engine saw it.
    pub latency: Duration,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AsrError {
    /// Cannot connect, or the service is starting or stopping.
    #[error("speech recognition unavailable: {0}")]
    Unavailable(String),
    /// Full (RESOURCE_EXHAUSTED): try later.
    #[error("speech recognition busy: {0}")]
    Busy(String),
    /// No final result within the deadline.
    #[error("speech recognition timed out after {0:?}")]
    Timeout(Duration),
    /// The service refused the request (INVALID_ARGUMENT and the like): a bug on our side.
    #[error("speech recognition refused the request: {0}")]
    Rejected(String),
    /// The stream ended without a final result.
    #[error("speech recognition returned no result")]
    NoResult,
}

impl AsrError {
    /// Whether the dialogue should stop asking for speech (fall back to DTMF).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AsrError::Unavailable(_) | AsrError::Timeout(_))
    }
}

/// A cheap-to-clone handle; the connection is opened on first use and shared.
#[derive(Debug, Clone)]
pub struct AsrClient {
    client: RecognizerClient<Channel>,
    cfg: AsrConfig,
}

/// Samples per audio message (100 ms at 8 kHz).
const CHUNK_SAMPLES: usize = 800;

impl AsrClient {
    /// A client for `cfg.endpoint` (checked here; connected lazily).
    pub fn new(cfg: AsrConfig) -> Result<AsrClient, AsrError> {
        let endpoint = Endpoint::from_shared(cfg.endpoint.clone())
            .map_err(|e| AsrError::Rejected(format!("bad endpoint {:?}: {e}", cfg.endpoint)))?
            .connect_timeout(cfg.connect_timeout)
            .tcp_nodelay(true);
        Ok(AsrClient {
            client: RecognizerClient::new(endpoint.connect_lazy()),
            cfg,
        })
    }

    pub fn config(&self) -> &AsrConfig {
        &self.cfg
    }

    /// Recognise one utterance of 8 kHz PCM. `hints` bias the model (the script's phrases);
    /// `utterance_id` must not hold personal data (it is logged by the server).
    pub async fn recognize(
        &self,
        pcm: &[i16],
        lang: Lang,
        hints: Vec<String>,
        utterance_id: String,
    ) -> Result<Transcript, AsrError> {
        let started = Instant::now();
        let mut requests = Vec::with_capacity(1 + pcm.len().div_ceil(CHUNK_SAMPLES));
        requests.push(pb::RecognizeRequest {
            request: Some(pb::recognize_request::Request::Config(
                pb::RecognitionConfig {
                    language_code: lang.code().into(),
                    sample_rate_hz: media::SAMPLE_RATE as i32,
                    encoding: pb::AudioEncoding::Linear16 as i32,
                    phrase_hints: hints,
                    interim_results: false,
                    utterance_id,
                },
            )),
        });
        for chunk in pcm.chunks(CHUNK_SAMPLES) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
            requests.push(pb::RecognizeRequest {
                request: Some(pb::recognize_request::Request::Audio(bytes)),
            });
        }
        let mut request = tonic::Request::new(tokio_stream::iter(requests));
        request.set_timeout(self.cfg.timeout);
        let mut client = self.client.clone();
        let call = async move {
            let mut stream = client
                .recognize(request)
                .await
                .map_err(map_status)?
                .into_inner();
            while let Some(resp) = stream.message().await.map_err(map_status)? {
                let Some(result) = resp.results.into_iter().find(|r| r.is_final) else {
                    continue;
                };
                let best = result.alternatives.into_iter().next().unwrap_or_default();
                let timing = resp.timing.unwrap_or_default();
                return Ok(Transcript {
                    text: best.transcript,
                    confidence: best.confidence.clamp(0.0, 1.0),
                    no_speech_probability: result.no_speech_probability,
                    audio: Duration::from_millis(u64::from(timing.audio_duration_ms)),
                    processing: Duration::from_millis(u64::from(timing.processing_ms)),
                    queued: Duration::from_millis(u64::from(timing.queue_ms)),
                    latency: started.elapsed(),
                });
            }
            Err(AsrError::NoResult)
        };
        match tokio::time::timeout(self.cfg.timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(AsrError::Timeout(self.cfg.timeout)),
        }
    }
}

fn map_status(s: tonic::Status) -> AsrError {
    use tonic::Code;
    let msg = s.message().to_owned();
    match s.code() {
        Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled => {
            AsrError::Unavailable(if msg.is_empty() {
                format!("{:?}", s.code())
            } else {
                msg
            })
        }
        Code::ResourceExhausted => AsrError::Busy(msg),
        Code::DeadlineExceeded => AsrError::Timeout(Duration::ZERO),
        _ => AsrError::Rejected(format!("{:?}: {msg}", s.code())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nothing_listening_is_unavailable_quickly() {
        // A port nobody listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = AsrClient::new(AsrConfig::new(format!("http://127.0.0.1:{port}"))).unwrap();
        let t = Instant::now();
        let e = client
            .recognize(&[0; 1600], Lang::Ru, vec![], "t/1".into())
            .await
            .unwrap_err();
        assert!(e.is_unavailable(), "{e:?}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn bad_endpoints_are_refused() {
        assert!(matches!(
            AsrClient::new(AsrConfig::new("not a uri")),
            Err(AsrError::Rejected(_))
        ));
    }
}
