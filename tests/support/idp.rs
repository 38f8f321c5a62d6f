//! A fake identity provider at the HTTP boundary: a JWKS endpoint serving real RSA and P-256 public
//! keys, and a signer for the tokens it would issue.

use actix_web::{App, HttpResponse, HttpServer, web};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const RSA_KID: &str = "rsa-key-1";
pub const EC_KID: &str = "ec-key-1";
pub const ISSUER: &str = "https://idp.test";
pub const AUDIENCE: &str = "easel-test";

pub struct FakeIdp {
    pub jwks_url: String,
    pub fetches: Arc<AtomicUsize>,
    rsa_private_pem: String,
    /// The RSA public key as PEM: what an attacker would use as an HMAC secret.
    pub rsa_public_pem: String,
    ec_private_pem: String,
    handle: actix_web::dev::ServerHandle,
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

impl FakeIdp {
    pub async fn start() -> Self {
        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa key");
        let rsa_der = rsa.as_der().expect("rsa der");
        let rsa_public = rsa.public_key();
        let rsa_public_der = rsa_public.as_der().expect("rsa public der");
        let n = URL_SAFE_NO_PAD.encode(rsa_public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(rsa_public.exponent().big_endian_without_leading_zero());

        let rng = SystemRandom::new();
        let ec_pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("ec key");
        let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ec_pkcs8.as_ref())
            .expect("ec parse");
        let point = ec.public_key().as_ref().to_vec(); // 0x04 || x || y
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);

        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": RSA_KID, "use": "sig", "alg": "RS256", "n": n, "e": e},
            {"kty": "EC", "kid": EC_KID, "use": "sig", "alg": "ES256", "crv": "P-256", "x": x, "y": y},
        ]});
        let fetches = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&fetches);
        let body = Arc::new(jwks);
        let server = HttpServer::new(move || {
            let counter = Arc::clone(&counter);
            let body = Arc::clone(&body);
            App::new().route(
                "/.well-known/jwks.json",
                web::get().to(move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = Value::clone(&body);
                    async move { HttpResponse::Ok().json(body) }
                }),
            )
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .expect("bind fake idp");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            jwks_url: format!("http://{addr}/.well-known/jwks.json"),
            fetches,
            rsa_private_pem: pem("PRIVATE KEY", rsa_der.as_ref()),
            rsa_public_pem: pem("PUBLIC KEY", rsa_public_der.as_ref()),
            ec_private_pem: pem("PRIVATE KEY", ec_pkcs8.as_ref()),
            handle,
        }
    }

    /// The settings that point Easel at this provider.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("EASEL_AUTH_JWKS_URL", self.jwks_url.clone()),
            ("EASEL_AUTH_ISSUER", ISSUER.to_owned()),
            ("EASEL_AUTH_AUDIENCE", AUDIENCE.to_owned()),
        ]
    }

    /// Valid claims for `sub`, valid for five minutes.
    pub fn claims(&self, sub: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "sub": sub, "iss": ISSUER, "aud": AUDIENCE,
            "iat": now, "nbf": now - 5, "exp": now + 300,
            "email": format!("{sub}@idp.test"), "username": format!("idp_{sub}"), "name": "Idp Person",
        })
    }

    pub fn rs256(&self, claims: &Value) -> String {
        self.sign(Algorithm::RS256, RSA_KID, claims)
    }

    pub fn es256(&self, claims: &Value) -> String {
        self.sign(Algorithm::ES256, EC_KID, claims)
    }

    /// Signs with this provider's key for `alg`, naming `kid` in the header.
    pub fn sign(&self, alg: Algorithm, kid: &str, claims: &Value) -> String {
        let key = match alg {
            Algorithm::ES256 => {
                EncodingKey::from_ec_pem(self.ec_private_pem.as_bytes()).expect("ec pem")
            }
            _ => EncodingKey::from_rsa_pem(self.rsa_private_pem.as_bytes()).expect("rsa pem"),
        };
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &key).expect("sign")
    }
}

impl Drop for FakeIdp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// A token with `alg: none` and no signature.
pub fn unsigned_token(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// An HS256 token whose HMAC key is `secret` (for our own tokens, or the algorithm-confusion attack).
pub fn hs256(secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("sign hs256")
}

/// Replaces the payload of a signed token, keeping header and signature.
pub fn tamper(token: &str, claims: &Value) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    parts.join(".")
}

/// Signs a webhook body the way Svix does, returning the three headers.
pub fn svix_headers(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let signature = easel::http::signature::sign(secret, id, timestamp, body).expect("sign");
    vec![
        ("svix-id", id.to_owned()),
        ("svix-timestamp", timestamp.to_string()),
        (
            "svix-signature",
            format!("v1,{}", STANDARD.encode(signature)),
        ),
    ]
}
