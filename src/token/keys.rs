//! Signing and verification keys: loading, `kid` derivation and the per-snapshot `KeySet`.
//!
//! The `kid` of a key is the upper-case hex SHA-1 of its DER SubjectPublicKeyInfo, as the seed
//! API computes it. Key material lives in the snapshot, never in a global, so a reload can
//! rotate it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa;
use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

/// The key that signs new tokens, and every key that verifies them.
#[derive(Debug)]
pub struct KeySet {
    pub algorithm: Algorithm,
    signing: EncodingKey,
    signing_kid: String,
    verifying: HashMap<String, DecodingKey>,
    public: Vec<PublicKey>,
}

/// What a JWKS entry needs of an RSA public key.
#[derive(Clone, Debug)]
pub struct PublicKey {
    pub kid: String,
    /// Base64url modulus and exponent (RFC 7518 §6.3.1).
    pub n: String,
    pub e: String,
}

impl KeySet {
    /// Loads `signing_key` (a private key) and `verify_keys` (public or private keys of earlier
    /// generations, still accepted).
    pub fn load(
        algorithm: Algorithm,
        signing_key: &Path,
        verify_keys: &[PathBuf],
    ) -> Result<KeySet, KeyError> {
        if !matches!(
            algorithm,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ) {
            return Err(KeyError::UnsupportedAlgorithm(algorithm));
        }
        check_private(signing_key)?;
        let (pem, text) = read_pem(signing_key)?;
        let pair = rsa_private(signing_key, &pem)?;
        let signing =
            EncodingKey::from_rsa_pem(&text).map_err(|_| KeyError::Parse(signing_key.into()))?;
        let first = public_of(signing_key, pair.public_key())?;
        let signing_kid = first.0.kid.clone();

        let mut set = KeySet {
            algorithm,
            signing,
            signing_kid,
            verifying: HashMap::new(),
            public: Vec::new(),
        };
        set.add(first);
        for path in verify_keys {
            let (pem, _) = read_pem(path)?;
            let public = if pem.tag() == "PUBLIC KEY" {
                let key = rsa::PublicKey::from_der(pem.contents())
                    .map_err(|_| KeyError::Parse(path.clone()))?;
                public_of(path, &key)?
            } else {
                public_of(path, rsa_private(path, &pem)?.public_key())?
            };
            set.add(public);
        }
        Ok(set)
    }

    fn add(&mut self, (public, decoding): (PublicKey, DecodingKey)) {
        if self
            .verifying
            .insert(public.kid.clone(), decoding)
            .is_none()
        {
            self.public.push(public);
        }
    }

    pub fn signing(&self) -> (&str, &EncodingKey) {
        (&self.signing_kid, &self.signing)
    }

    /// The verification key for `kid`, if it is one of ours.
    pub fn verifying(&self, kid: &str) -> Option<&DecodingKey> {
        self.verifying.get(kid)
    }

    /// Every public key that verifies, the signing key's first.
    pub fn public_keys(&self) -> &[PublicKey] {
        &self.public
    }
}

/// Upper-case hex SHA-1 of a DER SubjectPublicKeyInfo.
pub fn kid_of(spki_der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, spki_der);
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

/// Refuses a private key file that group or others may read.
#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| KeyError::Read(path.to_path_buf(), e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions(path.to_path_buf(), mode));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path) -> Result<(), KeyError> {
    Ok(())
}

/// The file's first PEM block, and the file's bytes.
fn read_pem(path: &Path) -> Result<(pem::Pem, Vec<u8>), KeyError> {
    let text = std::fs::read(path).map_err(|e| KeyError::Read(path.to_path_buf(), e))?;
    let pem = pem::parse(&text).map_err(|_| KeyError::Parse(path.to_path_buf()))?;
    Ok((pem, text))
}

fn rsa_private(path: &Path, pem: &pem::Pem) -> Result<rsa::KeyPair, KeyError> {
    let parsed = match pem.tag() {
        "PRIVATE KEY" => rsa::KeyPair::from_pkcs8(pem.contents()),
        "RSA PRIVATE KEY" => rsa::KeyPair::from_der(pem.contents()),
        _ => return Err(KeyError::Parse(path.to_path_buf())),
    };
    let pair = parsed.map_err(|_| KeyError::Parse(path.to_path_buf()))?;
    if pair.public_modulus_len() < 256 {
        return Err(KeyError::TooShort(path.to_path_buf()));
    }
    Ok(pair)
}

fn public_of(path: &Path, key: &rsa::PublicKey) -> Result<(PublicKey, DecodingKey), KeyError> {
    let spki = key
        .as_der()
        .map_err(|_| KeyError::Parse(path.to_path_buf()))?;
    let n = key.modulus();
    let e = key.exponent();
    let public = PublicKey {
        kid: kid_of(spki.as_ref()),
        n: URL_SAFE_NO_PAD.encode(n.big_endian_without_leading_zero()),
        e: URL_SAFE_NO_PAD.encode(e.big_endian_without_leading_zero()),
    };
    let decoding = DecodingKey::from_rsa_raw_components(
        n.big_endian_without_leading_zero(),
        e.big_endian_without_leading_zero(),
    );
    Ok((public, decoding))
}

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    #[error(
        "{} is readable by group or others (mode {:o}); run `chmod 600 {}`",
        .0.display(), .1, .0.display()
    )]
    Permissions(PathBuf, u32),
    #[error("{} is not a PEM RSA key (PKCS#8 \"PRIVATE KEY\", PKCS#1 \"RSA PRIVATE KEY\" or \"PUBLIC KEY\")", .0.display())]
    Parse(PathBuf),
    #[error("{} is shorter than 2048 bits", .0.display())]
    TooShort(PathBuf),
    #[error("{0:?} signing is not supported yet in this version; use an RS or PS algorithm")]
    UnsupportedAlgorithm(Algorithm),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_is_upper_hex_sha1() {
        // SHA-1("abc") = a9993e36...
        assert_eq!(kid_of(b"abc"), "A9993E364706816ABA3E25717850C26C9CD0D89D");
    }
}
