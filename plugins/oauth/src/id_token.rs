//! ID tokens, verified before anything is shown or decided from them (OpenID Connect Core
//! §3.1.3.7): the signature against the issuer's published keys (JWKS), `iss`, `aud` (and
//! `azp`), `exp`, and `nonce` on the browser flow. JOSE is jsonwebtoken's (ring underneath, the
//! crypto rustls already links), not code of our own.

use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::presets::{entra_expected_issuer, IssuerRule};

/// Clock skew tolerated on `exp` (the usual 60 s of OpenID Connect libraries).
const LEEWAY_SECS: i64 = 60;

/// What a token must say.
pub struct Expected<'a> {
    /// The issuer from discovery (Entra's may be a `{tenantid}` template).
    pub issuer: &'a str,
    pub rule: &'a IssuerRule,
    pub client_id: &'a str,
    /// The `nonce` sent with the authorization request (browser flow only).
    pub nonce: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// No published key matches the token's `kid`: the keys may have rotated (fetch again).
    UnknownKey,
    Invalid(String),
}

/// Reads a JWKS, skipping keys this client cannot use (another `kty`, a private member it
/// does not know) rather than refusing the whole set.
pub fn parse_jwks(body: &[u8]) -> Result<JwkSet, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the key set is not JSON (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let keys = v
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the key set has no `keys` array")?;
    Ok(JwkSet {
        keys: keys
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .collect(),
    })
}

/// Asymmetric signatures only: `none` and the HMAC algorithms (keyed with what would be a
/// public value) are refused.
fn acceptable(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

fn key_for<'a>(keys: &'a JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<&'a Jwk> {
    let usable = |k: &&Jwk| {
        k.common
            .key_algorithm
            .is_none_or(|a| format!("{a:?}") == format!("{alg:?}"))
            && !matches!(
                k.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            )
    };
    match kid {
        Some(kid) => keys
            .keys
            .iter()
            .filter(usable)
            .find(|k| k.common.key_id.as_deref() == Some(kid)),
        // Without `kid`, only an unambiguous set will do.
        None => {
            let mut candidates = keys.keys.iter().filter(usable).filter(|k| {
                DecodingKey::from_jwk(k).is_ok()
                    && matches!(
                        (&k.algorithm, alg),
                        (
                            jsonwebtoken::jwk::AlgorithmParameters::RSA(_),
                            Algorithm::RS256
                                | Algorithm::RS384
                                | Algorithm::RS512
                                | Algorithm::PS256
                                | Algorithm::PS384
                                | Algorithm::PS512
                        ) | (
                            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_),
                            Algorithm::ES256 | Algorithm::ES384
                        ) | (
                            jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_),
                            Algorithm::EdDSA
                        )
                    )
            });
            let first = candidates.next();
            first.filter(|_| candidates.next().is_none())
        }
    }
}

/// Verifies `token` against `keys` and returns its claims.
pub fn verify(token: &str, keys: &JwkSet, e: &Expected<'_>) -> Result<Map<String, Value>, Refused> {
    let bad = |s: &str| Refused::Invalid(s.to_owned());
    let header = jsonwebtoken::decode_header(token).map_err(|_| bad("it is not a signed JWT"))?;
    if !acceptable(header.alg) {
        return Err(Refused::Invalid(format!(
            "it is signed with {:?}; qlam accepts public-key signatures only",
            header.alg
        )));
    }
    let jwk = key_for(keys, header.kid.as_deref(), header.alg).ok_or(Refused::UnknownKey)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| bad("the issuer's key is unusable"))?;
    let mut validation = Validation::new(header.alg);
    // Time and audience are checked below, with the provider's clock and clearer words.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .map_err(|err| match err.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => bad("its signature is wrong"),
            _ => bad("it does not decode"),
        })?
        .claims;
    let text = |k: &str| claims.get(k).and_then(Value::as_str);

    let iss = text("iss").ok_or(bad("it has no `iss` claim"))?;
    let expected_iss = match e.rule {
        IssuerRule::Entra { tenant, .. } => {
            entra_expected_issuer(e.issuer, tenant, text("tid")).map_err(Refused::Invalid)?
        }
        _ => e.issuer.to_owned(),
    };
    let google_alias = *e.rule == IssuerRule::Google
        && e.issuer == "https://accounts.google.com"
        && iss == "accounts.google.com";
    if iss != expected_iss && !google_alias {
        return Err(Refused::Invalid(format!(
            "it was issued by `{}`, not `{expected_iss}`",
            iss.escape_debug()
        )));
    }

    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&e.client_id) {
        return Err(bad("it is not for this client (`aud`)"));
    }
    if audiences.len() > 1 && text("azp").is_some_and(|azp| azp != e.client_id) {
        return Err(bad("it was issued to another party (`azp`)"));
    }

    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(bad("it has no `exp` claim"))?;
    if exp + LEEWAY_SECS <= e.now.timestamp() {
        return Err(bad("it has expired"));
    }
    if let Some(nonce) = e.nonce {
        if text("nonce") != Some(nonce) {
            return Err(bad("its `nonce` is not the one this login sent"));
        }
    }
    Ok(claims)
}

/// The claims worth showing (who is logged in, where).
pub fn display_claims(claims: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for k in ["sub", "preferred_username", "email", "name", "iss", "tid"] {
        if let Some(v @ Value::String(_)) = claims.get(k) {
            out.insert(k.to_owned(), v.clone());
        }
    }
    out
}

/// Keys and tokens made in the test (ES256 with ring: no fixed key material in the tree).
#[cfg(test)]
pub mod testing {
    use super::*;
    use base64::Engine;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    pub struct Signer {
        pkcs8: Vec<u8>,
        pub kid: String,
        public: Vec<u8>,
    }

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    impl Signer {
        pub fn new(kid: &str) -> Signer {
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            Signer {
                pkcs8: pkcs8.as_ref().to_vec(),
                kid: kid.to_owned(),
                public: pair.public_key().as_ref().to_vec(),
            }
        }

        /// The public key as a JWK.
        pub fn jwk(&self) -> Value {
            serde_json::json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
                "x": b64(&self.public[1..33]), "y": b64(&self.public[33..]),
            })
        }

        pub fn jwks(&self) -> String {
            serde_json::json!({ "keys": [self.jwk()] }).to_string()
        }

        pub fn sign(&self, claims: &Value) -> String {
            let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
            header.kid = Some(self.kid.clone());
            let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", self.pkcs8.clone()));
            let key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
            jsonwebtoken::encode(&header, claims, &key).unwrap()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::Signer;
    use super::*;
    use serde_json::json;

    const ISS: &str = "https://as.example";

    fn expected<'a>(rule: &'a IssuerRule, issuer: &'a str, nonce: Option<&'a str>) -> Expected<'a> {
        Expected {
            issuer,
            rule,
            client_id: "cli",
            nonce,
            now: DateTime::from_timestamp(1_900_000_000, 0).unwrap(),
        }
    }

    fn claims(extra: Value) -> Value {
        let mut c =
            json!({"iss": ISS, "aud": "cli", "sub": "u1", "exp": 1_900_000_600, "nonce": "n1"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    #[test]
    fn a_good_token_verifies_and_each_claim_is_checked() {
        let s = Signer::new("k1");
        let keys = parse_jwks(s.jwks().as_bytes()).unwrap();
        let rule = IssuerRule::Exact;
        let ok = verify(
            &s.sign(&claims(json!({}))),
            &keys,
            &expected(&rule, ISS, Some("n1")),
        )
        .unwrap();
        assert_eq!(ok["sub"], "u1");
        let refused = |c: Value, nonce: Option<&str>| match verify(
            &s.sign(&c),
            &keys,
            &expected(&rule, ISS, nonce),
        ) {
            Err(Refused::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(
            refused(claims(json!({"iss": "https://evil.example"})), None)
                .contains("issued by `https://evil.example`")
        );
        assert!(refused(claims(json!({"aud": "other"})), None).contains("`aud`"));
        assert!(refused(claims(json!({"aud": ["cli", "x"], "azp": "x"})), None).contains("`azp`"));
        assert!(refused(claims(json!({"exp": 1_899_999_000})), None).contains("expired"));
        assert!(refused(claims(json!({})), Some("n2")).contains("`nonce`"));
        // Within the leeway is still valid.
        assert!(verify(
            &s.sign(&claims(json!({"exp": 1_899_999_950}))),
            &keys,
            &expected(&rule, ISS, None)
        )
        .is_ok());
    }

    #[test]
    fn a_signature_by_another_key_or_an_unknown_kid_is_refused() {
        let real = Signer::new("k1");
        let keys = parse_jwks(real.jwks().as_bytes()).unwrap();
        let rule = IssuerRule::Exact;
        // Same kid, other key: a forgery.
        let forger = Signer::new("k1");
        assert_eq!(
            verify(
                &forger.sign(&claims(json!({}))),
                &keys,
                &expected(&rule, ISS, None)
            ),
            Err(Refused::Invalid("its signature is wrong".into()))
        );
        let rotated = Signer::new("k2");
        assert_eq!(
            verify(
                &rotated.sign(&claims(json!({}))),
                &keys,
                &expected(&rule, ISS, None)
            ),
            Err(Refused::UnknownKey)
        );
        // alg=none and HMAC tokens never verify.
        use base64::Engine;
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let none = format!(
            "{}.{}.",
            enc(r#"{"alg":"none"}"#),
            enc(&claims(json!({})).to_string())
        );
        assert!(verify(&none, &keys, &expected(&rule, ISS, None)).is_err());
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims(json!({})),
            &jsonwebtoken::EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        assert!(
            matches!(verify(&hs, &keys, &expected(&rule, ISS, None)), Err(Refused::Invalid(m)) if m.contains("public-key"))
        );
    }

    #[test]
    fn entra_template_issuer_takes_the_tenant_from_tid() {
        let s = Signer::new("k1");
        let keys = parse_jwks(s.jwks().as_bytes()).unwrap();
        let a = "https://login.microsoftonline.com";
        let template = format!("{a}/{{tenantid}}/v2.0");
        let rule = IssuerRule::Entra {
            authority: a.into(),
            tenant: "organizations".into(),
        };
        let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        let good = claims(json!({"iss": format!("{a}/{tid}/v2.0"), "tid": tid}));
        assert!(verify(&s.sign(&good), &keys, &expected(&rule, &template, None)).is_ok());
        // An issuer naming another tenant than `tid` says.
        let other = "00000000-0000-0000-0000-000000000001";
        let lying = claims(json!({"iss": format!("{a}/{other}/v2.0"), "tid": tid}));
        assert!(verify(&s.sign(&lying), &keys, &expected(&rule, &template, None)).is_err());
        let untenanted = claims(json!({"iss": format!("{a}/{tid}/v2.0")}));
        assert!(verify(
            &s.sign(&untenanted),
            &keys,
            &expected(&rule, &template, None)
        )
        .is_err());
    }

    #[test]
    fn google_legacy_issuer_is_accepted_for_google_only() {
        let s = Signer::new("k1");
        let keys = parse_jwks(s.jwks().as_bytes()).unwrap();
        let g = "https://accounts.google.com";
        let legacy = claims(json!({"iss": "accounts.google.com"}));
        assert!(verify(
            &s.sign(&legacy),
            &keys,
            &expected(&IssuerRule::Google, g, None)
        )
        .is_ok());
        assert!(verify(
            &s.sign(&legacy),
            &keys,
            &expected(&IssuerRule::Exact, g, None)
        )
        .is_err());
    }

    #[test]
    fn a_key_set_with_foreign_keys_still_reads() {
        let s = Signer::new("k1");
        let set = json!({"keys": [{"kty": "weird", "kid": "z"}, s.jwk()]}).to_string();
        assert_eq!(parse_jwks(set.as_bytes()).unwrap().keys.len(), 1);
        assert!(parse_jwks(b"{}").is_err());
    }
}
