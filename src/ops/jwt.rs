//! `ringsfu.jwt.verify(token, key, opts)`: JSON Web Token (RFC 7519, JWS compact form)
//! verification for room scripts. Signatures are checked with `ring`: HS256/HS384/HS512 with a
//! shared secret, ES256/ES384 and RS256/RS384/RS512/PS256/PS384/PS512 with a PEM public key
//! (`-----BEGIN PUBLIC KEY-----`, or `-----BEGIN RSA PUBLIC KEY-----` for RSA).
//!
//! The algorithm is never taken from the token: the caller names the one it accepts, and a
//! token whose header says otherwise (including `none`) is refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::{hmac, signature};
use serde_json::Value;

/// Why a token was refused; the text is what scripts get.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// The options are wrong (a script bug): unknown algorithm, unusable key.
    #[error("{0}")]
    Usage(String),
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not valid yet")]
    NotYetValid,
    /// The signature does not verify with the key.
    #[error("bad signature")]
    BadSignature,
    /// The token's header names another algorithm than the one required.
    #[error("wrong algorithm")]
    WrongAlgorithm,
    /// Malformed token, missing `exp`, wrong `aud` or `iss`.
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Options of [`verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Required algorithm (`"HS256"`, `"ES256"`, `"RS256"`, ...).
    pub alg: String,
    /// Required `aud` (the claim may be a string or an array containing it).
    pub audience: Option<String>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Seconds of clock skew accepted on `exp` and `nbf`.
    pub leeway: u64,
}

enum Alg {
    Hmac(hmac::Algorithm),
    Ecdsa(&'static signature::EcdsaVerificationAlgorithm),
    Rsa(&'static signature::RsaParameters),
}

fn alg(name: &str) -> Option<Alg> {
    Some(match name {
        "HS256" => Alg::Hmac(hmac::HMAC_SHA256),
        "HS384" => Alg::Hmac(hmac::HMAC_SHA384),
        "HS512" => Alg::Hmac(hmac::HMAC_SHA512),
        "ES256" => Alg::Ecdsa(&signature::ECDSA_P256_SHA256_FIXED),
        "ES384" => Alg::Ecdsa(&signature::ECDSA_P384_SHA384_FIXED),
        "RS256" => Alg::Rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
        "RS384" => Alg::Rsa(&signature::RSA_PKCS1_2048_8192_SHA384),
        "RS512" => Alg::Rsa(&signature::RSA_PKCS1_2048_8192_SHA512),
        "PS256" => Alg::Rsa(&signature::RSA_PSS_2048_8192_SHA256),
        "PS384" => Alg::Rsa(&signature::RSA_PSS_2048_8192_SHA384),
        "PS512" => Alg::Rsa(&signature::RSA_PSS_2048_8192_SHA512),
        _ => return None,
    })
}

/// Verifies `token` with `key` (the secret for HS*, a PEM public key otherwise) at time `now`
/// (seconds since the Unix epoch) and returns its claims. `exp` is required.
pub fn verify_at(
    token: &str,
    key: &str,
    opts: &VerifyOptions,
    now: u64,
) -> Result<Value, JwtError> {
    let algorithm =
        alg(&opts.alg).ok_or_else(|| JwtError::Usage(format!("unknown alg {:?}", opts.alg)))?;
    // The key is checked before the token, so a script bug shows whatever the token is.
    let public = match algorithm {
        Alg::Hmac(_) => None,
        _ => Some(public_key_der(key).map_err(JwtError::Usage)?),
    };
    let invalid = |m: &str| JwtError::Invalid(m.to_owned());
    let mut parts = token.trim().split('.');
    let (Some(h64), Some(c64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("not three dot-separated parts"));
    };
    let decode = |s: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| JwtError::Invalid(format!("{what} is not base64url")))
    };
    let header: Value = serde_json::from_slice(&decode(h64, "header")?)
        .map_err(|_| invalid("header is not JSON"))?;
    if header.get("alg").and_then(Value::as_str) != Some(opts.alg.as_str()) {
        return Err(JwtError::WrongAlgorithm);
    }
    let sig = decode(s64, "signature")?;
    let signed = &token.trim().as_bytes()[..h64.len() + 1 + c64.len()];
    let ok = match (algorithm, public) {
        (Alg::Hmac(a), _) => hmac::verify(&hmac::Key::new(a, key.as_bytes()), signed, &sig).is_ok(),
        (Alg::Ecdsa(a), Some(k)) => signature::UnparsedPublicKey::new(a, k)
            .verify(signed, &sig)
            .is_ok(),
        (Alg::Rsa(a), Some(k)) => signature::UnparsedPublicKey::new(a, k)
            .verify(signed, &sig)
            .is_ok(),
        _ => false,
    };
    if !ok {
        return Err(JwtError::BadSignature);
    }
    let claims: Value = serde_json::from_slice(&decode(c64, "claims")?)
        .map_err(|_| invalid("claims are not JSON"))?;
    if !claims.is_object() {
        return Err(invalid("claims are not a JSON object"));
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or_else(|| invalid("no numeric exp claim"))?;
    if (now as f64) > exp + opts.leeway as f64 {
        return Err(JwtError::Expired);
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_f64().ok_or_else(|| invalid("nbf is not a number"))?;
        if ((now + opts.leeway) as f64) < nbf {
            return Err(JwtError::NotYetValid);
        }
    }
    if let Some(want) = &opts.audience {
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => a == want,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(want)),
            _ => false,
        };
        if !ok {
            return Err(invalid("wrong aud"));
        }
    }
    if let Some(want) = &opts.issuer {
        if claims.get("iss").and_then(Value::as_str) != Some(want.as_str()) {
            return Err(invalid("wrong iss"));
        }
    }
    Ok(claims)
}

/// [`verify_at`] with the system clock.
pub fn verify(token: &str, key: &str, opts: &VerifyOptions) -> Result<Value, JwtError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    verify_at(token, key, opts, now)
}

/// The key bytes `ring` verifies with, from a PEM public key: the BIT STRING of a
/// SubjectPublicKeyInfo (`PUBLIC KEY`: the EC point, or the PKCS#1 RSA key), or a PKCS#1
/// `RSA PUBLIC KEY` as it is.
fn public_key_der(pem: &str) -> Result<Vec<u8>, String> {
    let pem = pem.trim();
    let (label, body) = pem
        .strip_prefix("-----BEGIN ")
        .and_then(|r| r.split_once("-----"))
        .ok_or("key is not a PEM public key (-----BEGIN PUBLIC KEY-----)")?;
    let end = format!("-----END {label}-----");
    let body = body
        .split_once(end.as_str())
        .map(|(b, _)| b)
        .ok_or_else(|| format!("PEM key has no {end} line"))?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("PEM key body is not base64: {e}"))?;
    match label {
        "RSA PUBLIC KEY" => Ok(der),
        "PUBLIC KEY" => spki_key(&der).ok_or_else(|| "malformed SubjectPublicKeyInfo".to_owned()),
        other => Err(format!(
            "PEM label {other:?}: expected PUBLIC KEY (a private key is not accepted)"
        )),
    }
}

/// One DER element at the start of `b`: (tag, content, rest).
fn der(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&l0, mut b) = b.split_first()?;
    let len = if l0 < 0x80 {
        l0 as usize
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let len = b[..n].iter().fold(0usize, |a, &x| (a << 8) | x as usize);
        b = &b[n..];
        len
    };
    (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
}

fn spki_key(d: &[u8]) -> Option<Vec<u8>> {
    let (0x30, spki, _) = der(d)? else {
        return None;
    };
    let (0x30, _alg, rest) = der(spki)? else {
        return None;
    };
    let (0x03, bits, _) = der(rest)? else {
        return None;
    };
    let (&0, key) = bits.split_first()? else {
        return None;
    };
    Some(key.to_vec())
}

/// Installs `ringsfu.jwt` into the `ringsfu` table `r`:
///
/// `ringsfu.jwt.verify(token, key, {alg = "HS256", aud = nil, iss = nil, leeway = 0})` →
/// the claims (a table) when the token is valid, else `nil, reason` (`"no token"`,
/// `"token expired"`, `"bad signature"`, `"wrong algorithm"`, `"invalid token: ..."`). A
/// missing or unknown `alg` or an unusable key raises an error (a script bug, not a bad token).
pub fn install(lua: &mlua::Lua, r: &mlua::Table) -> mlua::Result<()> {
    use mlua::LuaSerdeExt;
    let jwt = lua.create_table()?;
    jwt.set(
        "verify",
        lua.create_function(
            |lua, (token, key, opts): (Option<String>, String, mlua::Table)| {
                let Some(alg_name) = opts.get::<Option<String>>("alg")? else {
                    return Err(crate::lua_host::error::invalid(
                        "ringsfu.jwt.verify: opts.alg is required (e.g. \"HS256\")",
                    ));
                };
                let o = VerifyOptions {
                    alg: alg_name,
                    audience: opts.get("aud")?,
                    issuer: opts.get("iss")?,
                    leeway: opts.get::<Option<u64>>("leeway")?.unwrap_or(0),
                };
                let result = match token.filter(|t| !t.is_empty()) {
                    None if alg(&o.alg).is_none() => {
                        Err(JwtError::Usage(format!("unknown alg {:?}", o.alg)))
                    }
                    None => return Ok((mlua::Value::Nil, Some("no token".to_owned()))),
                    Some(t) => verify(&t, &key, &o),
                };
                match result {
                    Ok(claims) => Ok((lua.to_value(&claims)?, None)),
                    Err(JwtError::Usage(m)) => Err(crate::lua_host::error::invalid(format!(
                        "ringsfu.jwt.verify: {m}"
                    ))),
                    Err(e) => Ok((mlua::Value::Nil, Some(e.to_string()))),
                }
            },
        )?,
    )?;
    r.set("jwt", jwt)
}

/// Signs `claims` with HS256 (tests and tools: the server only verifies).
pub fn sign_hs256(claims: &Value, secret: &str) -> String {
    let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{head}.{body}");
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        signed.as_bytes(),
    );
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::KeyPair;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn opts(alg: &str) -> VerifyOptions {
        VerifyOptions {
            alg: alg.into(),
            ..Default::default()
        }
    }

    fn pem(label: &str, der: &[u8]) -> String {
        let b = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN {label}-----\n{b}\n-----END {label}-----\n")
    }

    fn sign_with(alg: &str, claims: &Value, f: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let head = URL_SAFE_NO_PAD.encode(json!({"alg": alg}).to_string());
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{head}.{body}");
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(f(signed.as_bytes())))
    }

    #[test]
    fn hs256_good_expired_bad_signature_wrong_alg() {
        let good = sign_hs256(&json!({"room": "r1", "exp": NOW + 60}), "s3cret");
        assert_eq!(
            verify_at(&good, "s3cret", &opts("HS256"), NOW).unwrap()["room"],
            "r1"
        );
        assert_eq!(
            verify_at(&good, "other", &opts("HS256"), NOW),
            Err(JwtError::BadSignature)
        );
        assert_eq!(
            verify_at(&good, "s3cret", &opts("HS384"), NOW),
            Err(JwtError::WrongAlgorithm)
        );
        assert_eq!(
            verify_at(&good, "s3cret", &opts("HS256"), NOW + 61),
            Err(JwtError::Expired)
        );
        let leeway = VerifyOptions {
            leeway: 5,
            ..opts("HS256")
        };
        assert!(verify_at(&good, "s3cret", &leeway, NOW + 64).is_ok());
        // A flipped claim byte breaks the signature.
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(json!({"room": "r2", "exp": NOW + 60}).to_string());
        assert_eq!(
            verify_at(&parts.join("."), "s3cret", &opts("HS256"), NOW),
            Err(JwtError::BadSignature)
        );
        let no_exp = sign_hs256(&json!({"room": "r1"}), "s3cret");
        assert!(matches!(
            verify_at(&no_exp, "s3cret", &opts("HS256"), NOW),
            Err(JwtError::Invalid(_))
        ));
        let later = sign_hs256(&json!({"exp": NOW + 60, "nbf": NOW + 30}), "s3cret");
        assert_eq!(
            verify_at(&later, "s3cret", &opts("HS256"), NOW),
            Err(JwtError::NotYetValid)
        );
        for bad in ["", "a.b", "a.b.c", "a.b.c.d", "!!.!!.!!"] {
            assert!(
                matches!(
                    verify_at(bad, "s3cret", &opts("HS256"), NOW),
                    Err(JwtError::Invalid(_) | JwtError::WrongAlgorithm)
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            verify_at(&good, "s3cret", &opts("XX1"), NOW),
            Err(JwtError::Usage(_))
        ));
        assert!(matches!(
            verify_at(&good, "not a pem", &opts("RS256"), NOW),
            Err(JwtError::Usage(_))
        ));
        // alg "none" is never accepted, whatever is asked.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(json!({"exp": NOW + 9}).to_string())
        );
        assert!(matches!(
            verify_at(&none, "s3cret", &opts("HS256"), NOW),
            Err(JwtError::WrongAlgorithm)
        ));
        assert!(matches!(
            verify_at(&none, "s3cret", &opts("none"), NOW),
            Err(JwtError::Usage(_))
        ));
    }

    #[test]
    fn aud_and_iss_are_checked_when_asked() {
        let t = sign_hs256(
            &json!({"exp": NOW + 60, "aud": ["a", "sfu"], "iss": "me"}),
            "k",
        );
        let o = VerifyOptions {
            audience: Some("sfu".into()),
            issuer: Some("me".into()),
            ..opts("HS256")
        };
        assert!(verify_at(&t, "k", &o, NOW).is_ok());
        let o2 = VerifyOptions {
            audience: Some("x".into()),
            ..opts("HS256")
        };
        assert!(matches!(
            verify_at(&t, "k", &o2, NOW),
            Err(JwtError::Invalid(_))
        ));
        let o3 = VerifyOptions {
            issuer: Some("you".into()),
            ..opts("HS256")
        };
        assert!(matches!(
            verify_at(&t, "k", &o3, NOW),
            Err(JwtError::Invalid(_))
        ));
    }

    #[test]
    fn es256_verifies_with_a_pem_public_key() {
        let rng = ring::rand::SystemRandom::new();
        let gen = |rng: &ring::rand::SystemRandom| {
            let p8 = signature::EcdsaKeyPair::generate_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                rng,
            )
            .unwrap();
            signature::EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                p8.as_ref(),
                rng,
            )
            .unwrap()
        };
        let kp = gen(&rng);
        let claims = json!({"room": "r", "exp": NOW + 60});
        let token = sign_with("ES256", &claims, |m| {
            kp.sign(&rng, m).unwrap().as_ref().to_vec()
        });
        // SubjectPublicKeyInfo for P-256: fixed prefix + the 65-byte point.
        let mut spki = hex(b"3059301306072a8648ce3d020106082a8648ce3d030107034200");
        spki.extend_from_slice(kp.public_key().as_ref());
        let public = pem("PUBLIC KEY", &spki);
        assert_eq!(
            verify_at(&token, &public, &opts("ES256"), NOW).unwrap()["room"],
            "r"
        );
        let other = gen(&rng);
        let mut spki2 = hex(b"3059301306072a8648ce3d020106082a8648ce3d030107034200");
        spki2.extend_from_slice(other.public_key().as_ref());
        assert_eq!(
            verify_at(&token, &pem("PUBLIC KEY", &spki2), &opts("ES256"), NOW),
            Err(JwtError::BadSignature)
        );
        assert!(matches!(
            verify_at(&token, &pem("PRIVATE KEY", &spki), &opts("ES256"), NOW),
            Err(JwtError::Usage(_))
        ));
    }

    #[test]
    fn rs256_verifies_with_a_pem_public_key() {
        // A 2048-bit RSA key made for this test only (openssl genrsa).
        let p8 = include_str!("testdata/rsa_test_only.p8.pem");
        let public = include_str!("testdata/rsa_test_only.pub.pem");
        let b64: String = p8.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let kp = signature::RsaKeyPair::from_pkcs8(&der).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let claims = json!({"room": "r", "exp": NOW + 60});
        let token = sign_with("RS256", &claims, |m| {
            let mut sig = vec![0u8; kp.public().modulus_len()];
            kp.sign(&signature::RSA_PKCS1_SHA256, &rng, m, &mut sig)
                .unwrap();
            sig
        });
        assert_eq!(
            verify_at(&token, public, &opts("RS256"), NOW).unwrap()["room"],
            "r"
        );
        assert_eq!(
            verify_at(&token, public, &opts("RS384"), NOW),
            Err(JwtError::WrongAlgorithm)
        );
        let mut broken = token.clone();
        broken.pop();
        broken.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(
            verify_at(&broken, public, &opts("RS256"), NOW),
            Err(JwtError::BadSignature)
        );
    }

    fn hex(h: &[u8]) -> Vec<u8> {
        h.chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect()
    }
}
