//! The traffic plan: who sends what where, and what each receiver should get. The in-process
//! scenarios build one from the engine's answers; `external` reads one from a JSON file (the format
//! is documented in bench/README.md), so the same generator and receivers drive any forwarder.

use std::net::SocketAddr;

use ringsfu_core::engine::{base64_decode, base64_encode};
use ringsfu_core::srtp::{SrtpContext, SrtpProfile};
use serde::{Deserialize, Serialize};

/// Errors in a plan (bad file, unsafe destination, bad keys).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The file could not be read.
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    /// The JSON does not describe a plan.
    #[error("bad plan JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A destination or listen address is not on loopback.
    #[error("refusing {0}: the benchmark only sends to 127.0.0.0/8 or ::1")]
    NotLoopback(SocketAddr),
    /// SRTP parameters are unusable.
    #[error("bad SRTP parameters ({0})")]
    Srtp(String),
    /// A consumer names a producer that does not exist.
    #[error("consumer {0} names producer {1}, which does not exist")]
    NoProducer(usize, usize),
}

/// SRTP parameters as mediasoup spells them (SDES-style: suite + base64 of key‖salt).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SrtpParams {
    /// e.g. "AES_CM_128_HMAC_SHA1_80".
    pub suite: String,
    /// base64 of master key followed by master salt.
    pub key_base64: String,
}

impl SrtpParams {
    /// Fresh random parameters for `profile`.
    pub fn random(profile: SrtpProfile) -> Self {
        let mut key = vec![0u8; profile.master_key_len() + profile.master_salt_len()];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
        Self {
            suite: profile.name().to_string(),
            key_base64: base64_encode(&key),
        }
    }

    /// The SRTP context these parameters describe.
    pub fn context(&self) -> Result<SrtpContext, PlanError> {
        let profile = SrtpProfile::from_name(&self.suite)
            .ok_or_else(|| PlanError::Srtp(format!("unknown suite {}", self.suite)))?;
        let raw = base64_decode(&self.key_base64)
            .ok_or_else(|| PlanError::Srtp("key_base64 is not base64".into()))?;
        let kl = profile.master_key_len();
        if raw.len() != kl + profile.master_salt_len() {
            return Err(PlanError::Srtp(format!(
                "{} needs {} key bytes, got {}",
                self.suite,
                kl + profile.master_salt_len(),
                raw.len()
            )));
        }
        SrtpContext::new(profile, &raw[..kl], &raw[kl..])
            .map_err(|e| PlanError::Srtp(e.to_string()))
    }
}

/// One stream the generator sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProducerSpec {
    /// Where to send it (the forwarder's receive address).
    pub send_to: SocketAddr,
    /// Local address to send from (default 127.0.0.1:0). Forwarders that do not learn the source
    /// (comedia) need it fixed.
    #[serde(default)]
    pub bind: Option<SocketAddr>,
    /// RTP SSRC.
    pub ssrc: u32,
    /// RTP payload type.
    pub payload_type: u8,
    /// Whether the payload starts with a VP8 descriptor (video) so forwarders see keyframes.
    #[serde(default)]
    pub vp8: bool,
    /// SRTP parameters the generator encrypts with.
    pub srtp: SrtpParams,
}

/// One stream a receiver expects.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsumerSpec {
    /// Local address the stream arrives on.
    pub listen: SocketAddr,
    /// Index of the producer (in `producers`) whose packets this stream carries.
    pub producer: usize,
    /// SSRC the forwarder rewrites to (None = do not check).
    #[serde(default)]
    pub ssrc: Option<u32>,
    /// Payload type the forwarder rewrites to (None = do not check).
    #[serde(default)]
    pub payload_type: Option<u8>,
    /// SRTP parameters to decrypt with.
    pub srtp: SrtpParams,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Streams sent.
    pub producers: Vec<ProducerSpec>,
    /// Streams received.
    pub consumers: Vec<ConsumerSpec>,
    /// A process whose CPU to charge as "server" (external mode; optional).
    #[serde(default)]
    pub server_pid: Option<u32>,
}

impl Plan {
    /// Reads a plan from a JSON file and checks it.
    pub fn load(path: &str) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|e| PlanError::Read(path.into(), e))?;
        let plan: Plan = serde_json::from_str(&text)?;
        plan.check()?;
        Ok(plan)
    }

    /// Safety and consistency: every address on loopback, every key usable, every consumer's
    /// producer present.
    pub fn check(&self) -> Result<(), PlanError> {
        for p in &self.producers {
            check_loopback(p.send_to)?;
            if let Some(b) = p.bind {
                check_loopback(b)?;
            }
            p.srtp.context()?;
        }
        for (i, c) in self.consumers.iter().enumerate() {
            check_loopback(c.listen)?;
            if c.producer >= self.producers.len() {
                return Err(PlanError::NoProducer(i, c.producer));
            }
            c.srtp.context()?;
        }
        Ok(())
    }
}

/// Refuses any address that could leave the machine. Loopback addresses never route out, so this
/// check stands in for a route lookup.
pub fn check_loopback(a: SocketAddr) -> Result<(), PlanError> {
    if a.ip().is_loopback() {
        Ok(())
    } else {
        Err(PlanError::NotLoopback(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_destinations_are_refused() {
        let srtp = SrtpParams::random(SrtpProfile::Aes128CmHmacSha1_80);
        let mut plan = Plan {
            producers: vec![ProducerSpec {
                send_to: "127.0.0.1:4000".parse().unwrap(),
                bind: None,
                ssrc: 1,
                payload_type: 100,
                vp8: false,
                srtp: srtp.clone(),
            }],
            consumers: vec![],
            server_pid: None,
        };
        assert!(plan.check().is_ok());
        plan.producers[0].send_to = "10.0.0.1:4000".parse().unwrap();
        assert!(matches!(plan.check(), Err(PlanError::NotLoopback(_))));
        plan.producers[0].send_to = "[::1]:4000".parse().unwrap();
        assert!(plan.check().is_ok());
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused() {
        let mut s = SrtpParams::random(SrtpProfile::Aes128CmHmacSha1_80);
        assert!(s.context().is_ok());
        s.key_base64 = base64_encode(&[0u8; 16]);
        assert!(s.context().is_err());
        s.suite = "NOPE".into();
        assert!(s.context().is_err());
    }
}
