//! `private_key_jwt` client authentication: a short-lived JWT signed with the client's key
//! (RFC 7523 §2.2 and §3, OpenID Connect Core §9), made fresh for every token request. What
//! Entra ID, Okta and Keycloak recommend for services instead of a shared secret.

use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use qlam_plugin_api::{Error, Result, Secret};
use ring::rand::SecureRandom;
use serde::Serialize;

use crate::config::AssertionKey;

/// RFC 7523 §2.2.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid: servers refuse long-lived ones (Entra ID: at most 10 min).
const LIFETIME_SECS: i64 = 300;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: String,
    iat: i64,
    nbf: i64,
    exp: i64,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The key in `key.key_file`: RSA (PKCS#1 or PKCS#8) signs RS256, EC P-256 (PKCS#8) ES256.
fn signing_key(key: &AssertionKey) -> Result<(EncodingKey, Algorithm)> {
    let path = key.key_file.display();
    let pem = std::fs::read(&key.key_file).map_err(|e| {
        Error::configuration(format!("cannot read `private_key_file` `{path}`: {e}"))
    })?;
    if let Ok(k) = EncodingKey::from_rsa_pem(&pem) {
        return Ok((k, Algorithm::RS256));
    }
    if let Ok(k) = EncodingKey::from_ec_pem(&pem) {
        return Ok((k, Algorithm::ES256));
    }
    let hint = if pem.windows(14).any(|w| w == b"EC PRIVATE KEY") {
        " (convert an EC key to PKCS#8: `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8`)"
    } else {
        ""
    };
    Err(Error::configuration(format!(
        "`private_key_file` `{path}` is not an unencrypted RSA or P-256 private key in PEM{hint}"
    )))
}

/// The certificate thumbprints Entra ID matches the key by (`x5t`: SHA-1, `x5t#S256`).
fn thumbprints(cert_file: &std::path::Path) -> Result<(String, String)> {
    let path = cert_file.display();
    let text = std::fs::read(cert_file).map_err(|e| {
        Error::configuration(format!("cannot read `certificate_file` `{path}`: {e}"))
    })?;
    let der = pem::parse_many(&text)
        .ok()
        .and_then(|blocks| blocks.into_iter().find(|b| b.tag() == "CERTIFICATE"))
        .ok_or_else(|| {
            Error::configuration(format!(
                "`certificate_file` `{path}` holds no PEM certificate"
            ))
        })?;
    let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der.contents());
    let sha256 = ring::digest::digest(&ring::digest::SHA256, der.contents());
    Ok((b64(sha1.as_ref()), b64(sha256.as_ref())))
}

/// A client assertion for a request to `audience` (the token endpoint's URL).
pub fn assertion(
    key: &AssertionKey,
    client_id: &str,
    audience: &str,
    now: DateTime<Utc>,
) -> Result<Secret<String>> {
    let (encoding, alg) = signing_key(key)?;
    let mut header = Header::new(alg);
    header.kid = key.key_id.clone();
    if let Some(cert) = &key.certificate_file {
        let (x5t, x5t_s256) = thumbprints(cert)?;
        header.x5t = Some(x5t);
        header.x5t_s256 = Some(x5t_s256);
    }
    let mut jti = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut jti)
        .map_err(|_| Error::other("no randomness for the client assertion"))?;
    let now = now.timestamp();
    let claims = Claims {
        iss: client_id,
        sub: client_id,
        aud: audience,
        jti: b64(&jti),
        iat: now,
        nbf: now,
        exp: now + LIFETIME_SECS,
    };
    jsonwebtoken::encode(&header, &claims, &encoding)
        .map(Secret::new)
        .map_err(|e| {
            Error::configuration(format!(
                "cannot sign the client assertion with `private_key_file` `{}`: {e}",
                key.key_file.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    #[test]
    fn an_es256_assertion_verifies_and_says_who_and_for_whom() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key.pem");
        std::fs::write(
            &file,
            pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec())),
        )
        .unwrap();
        let key = AssertionKey {
            key_file: file,
            key_id: Some("k1".into()),
            certificate_file: None,
        };
        let now = Utc::now();
        let token = assertion(&key, "svc", "https://as.example/token", now).unwrap();
        let header = jsonwebtoken::decode_header(token.expose()).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("k1"));
        // The public key as an uncompressed point: 0x04 || x || y.
        let point = pair.public_key().as_ref();
        let decoding =
            DecodingKey::from_ec_components(&b64(&point[1..33]), &b64(&point[33..])).unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&["https://as.example/token"]);
        v.set_issuer(&["svc"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(token.expose(), &decoding, &v)
            .unwrap()
            .claims;
        assert_eq!(claims["sub"], "svc");
        assert_eq!(
            claims["exp"].as_i64(),
            Some(now.timestamp() + LIFETIME_SECS)
        );
        let again = assertion(&key, "svc", "https://as.example/token", now).unwrap();
        assert_ne!(
            token.expose(),
            again.expose(),
            "every assertion has its own jti"
        );
    }

    #[test]
    fn a_key_that_is_not_one_is_a_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key.pem");
        std::fs::write(
            &file,
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
        )
        .unwrap();
        let key = AssertionKey {
            key_file: file,
            key_id: None,
            certificate_file: None,
        };
        let e = assertion(&key, "svc", "https://as.example/token", Utc::now()).unwrap_err();
        assert!(e.message().contains("openssl pkcs8 -topk8"), "{e}");
        let key = AssertionKey {
            key_file: dir.path().join("missing.pem"),
            key_id: None,
            certificate_file: None,
        };
        let e = assertion(&key, "svc", "https://as.example/token", Utc::now()).unwrap_err();
        assert!(
            e.message().starts_with("cannot read `private_key_file`"),
            "{e}"
        );
    }
}
