//! Clerk-style session tokens: an RSA key generated for the run, RS256 tokens.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};

pub struct Keys {
    pub public_pem: String,
    encoding: EncodingKey,
}

impl Keys {
    pub fn generate() -> Self {
        let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("rsa key");
        let public_pem = private.to_public_key().to_public_key_pem(LineEnding::LF).expect("public pem");
        let private_pem = private.to_pkcs1_pem(LineEnding::LF).expect("private pem");
        let encoding = EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("encoding key");
        Self { public_pem, encoding }
    }

    /// A session token for `sub`, valid for `secs` seconds.
    pub fn token(&self, sub: &str, secs: i64) -> String {
        let now = now_secs();
        let claims = serde_json::json!({"sub": sub, "iat": now, "nbf": now, "exp": now + secs});
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.encoding).expect("token")
    }
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}
