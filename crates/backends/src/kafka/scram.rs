//! SASL/SCRAM-SHA-256 and -SHA-512 on the client side (RFC 5802, RFC 7677), as Kafka uses
//! them inside `SaslAuthenticate`: client-first, server-first, client-final, server-final,
//! with the server's signature checked. Written here (HMAC, PBKDF2 and base64 are a few
//! lines each over `sha2`) rather than pulled in as three crates.

use sha2::{Digest, Sha256, Sha512};

/// The hash of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn block(self) -> usize {
        match self {
            Hash::Sha256 => 64,
            Hash::Sha512 => 128,
        }
    }

    /// HMAC (RFC 2104).
    pub fn hmac(self, key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut k = if key.len() > self.block() { self.digest(key) } else { key.to_vec() };
        k.resize(self.block(), 0);
        let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
        inner.extend_from_slice(msg);
        let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
        outer.extend_from_slice(&self.digest(&inner));
        self.digest(&outer)
    }

    /// `Hi(password, salt, i)`: PBKDF2 with this HMAC, one block of output.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut first = salt.to_vec();
        first.extend_from_slice(&1u32.to_be_bytes());
        let mut u = self.hmac(password, &first);
        let mut out = u.clone();
        for _ in 1..iterations {
            u = self.hmac(password, &u);
            out.iter_mut().zip(&u).for_each(|(o, x)| *o ^= x);
        }
        out
    }
}

/// What went wrong in an exchange (the server's answer was not SCRAM, or did not prove it
/// knows the password).
#[derive(Debug, thiserror::Error)]
pub enum ScramError {
    #[error("the server's SCRAM message is malformed: {0}")]
    Malformed(String),
    #[error("the server refused the SCRAM exchange: {0}")]
    Refused(String),
    #[error("the server's SCRAM signature is wrong: it does not know this user's password (a man in the middle?)")]
    BadServerSignature,
}

/// One client-side exchange.
pub struct Client {
    hash: Hash,
    password: Vec<u8>,
    nonce: String,
    first_bare: String,
    /// Set after the server-first message: the server key and the auth message.
    pending: Option<(Vec<u8>, String)>,
}

impl Client {
    pub fn new(hash: Hash, user: &str, password: &[u8], nonce: &str) -> Client {
        let name = user.replace('=', "=3D").replace(',', "=2C");
        let first_bare = format!("n={name},r={nonce}");
        Client { hash, password: password.to_vec(), nonce: nonce.to_string(), first_bare, pending: None }
    }

    /// The client-first message.
    pub fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.first_bare).into_bytes()
    }

    /// The client-final message for the server-first message `server_first`.
    pub fn respond(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        let sf = std::str::from_utf8(server_first).map_err(|_| ScramError::Malformed("not UTF-8".into()))?;
        if let Some(e) = attr(sf, 'e') {
            return Err(ScramError::Refused(e.to_string()));
        }
        let nonce = attr(sf, 'r').ok_or_else(|| ScramError::Malformed(format!("no nonce in {sf:?}")))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramError::Malformed("the server's nonce does not extend ours".into()));
        }
        let salt =
            attr(sf, 's').and_then(base64_decode).ok_or_else(|| ScramError::Malformed(format!("no salt in {sf:?}")))?;
        let iterations: u32 = attr(sf, 'i')
            .and_then(|i| i.parse().ok())
            .filter(|i| *i >= 1)
            .ok_or_else(|| ScramError::Malformed(format!("no iteration count in {sf:?}")))?;
        let salted = self.hash.salted_password(&self.password, &salt, iterations);
        let client_key = self.hash.hmac(&salted, b"Client Key");
        let stored_key = self.hash.digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{sf},{without_proof}", self.first_bare);
        let signature = self.hash.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        self.pending = Some((self.hash.hmac(&salted, b"Server Key"), auth_message));
        Ok(format!("{without_proof},p={}", base64_encode(&proof)).into_bytes())
    }

    /// Checks the server-final message.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let sf = std::str::from_utf8(server_final).map_err(|_| ScramError::Malformed("not UTF-8".into()))?;
        if let Some(e) = attr(sf, 'e') {
            return Err(ScramError::Refused(e.to_string()));
        }
        let (server_key, auth_message) =
            self.pending.as_ref().ok_or_else(|| ScramError::Malformed("server-final before server-first".into()))?;
        let want = self.hash.hmac(server_key, auth_message.as_bytes());
        match attr(sf, 'v').and_then(base64_decode) {
            Some(v) if v == want => Ok(()),
            Some(_) => Err(ScramError::BadServerSignature),
            None => Err(ScramError::Malformed(format!("no verifier in {sf:?}"))),
        }
    }
}

/// The value of attribute `name` (`r=…`) in a SCRAM message.
fn attr(msg: &str, name: char) -> Option<&str> {
    msg.split(',').find_map(|part| part.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = B64.iter().position(|b| *b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_matches_rfc4648() {
        for (plain, enc) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
            assert_eq!(base64_decode(enc).unwrap(), plain.as_bytes());
        }
        assert!(base64_decode("a*b").is_none());
    }

    #[test]
    fn hmac_sha256_matches_rfc4231_case_2() {
        let mac = Hash::Sha256.hmac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    /// RFC 7677's SCRAM-SHA-256 example: our client must produce its client-final message
    /// and accept its server signature.
    #[test]
    fn scram_sha256_reproduces_rfc7677() {
        let mut c = Client::new(Hash::Sha256, "user", b"pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(c.first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let fin = c.respond(server_first).unwrap();
        assert_eq!(
            String::from_utf8(fin).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").unwrap();
        assert!(matches!(
            c.verify(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(ScramError::BadServerSignature)
        ));
    }

    #[test]
    fn a_server_error_or_foreign_nonce_is_refused() {
        let mut c = Client::new(Hash::Sha512, "u", b"p", "abc");
        assert!(matches!(c.respond(b"e=unknown-user"), Err(ScramError::Refused(_))));
        assert!(matches!(c.respond(b"r=xyz123,s=QUJD,i=4096"), Err(ScramError::Malformed(_))));
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
