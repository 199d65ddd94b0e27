//! Signing and verification keys: loading (from files, or from PEM bytes in memory), `kid`
//! derivation and the per-snapshot `KeySet`.
//!
//! The `kid` of a key is the upper-case hex SHA-1 of its DER SubjectPublicKeyInfo, as the seed
//! API computes it. Key material lives in the snapshot, never in a global, so a reload can
//! rotate it. Every algorithm of SPEC §4.2 is supported, each with its key type: RSA (≥ 2048
//! bits) for RS*/PS*, P-256 for ES256, P-384 for ES384, Ed25519 for EdDSA.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa;
use aws_lc_rs::signature::{
    EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair as _, ParsedPublicKey,
    RsaEncoding, VerificationAlgorithm, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};

/// The key that signs new tokens, and every key that verifies them.
#[derive(Debug)]
pub struct KeySet {
    pub algorithm: Algorithm,
    signer: Signer,
    signing_kid: String,
    /// `base64url({"alg":…,"kid":…,"typ":"JWT"})`, the same for every token of this key.
    header_b64: String,
    /// Each verification key parsed once, into the form aws-lc verifies with.
    verifying: HashMap<String, ParsedPublicKey>,
    public: Vec<PublicKey>,
}

/// A verification key as a JWKS entry describes it (RFC 7517, RFC 7518 §6).
#[derive(Clone, Debug)]
pub struct PublicKey {
    pub kid: String,
    pub params: KeyParams,
}

/// The public parameters of a key, base64url without padding.
#[derive(Clone, Debug)]
pub enum KeyParams {
    Rsa {
        n: String,
        e: String,
    },
    Ec {
        crv: &'static str,
        x: String,
        y: String,
    },
    Okp {
        crv: &'static str,
        x: String,
    },
}

/// The key type an algorithm needs.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Family {
    Rsa,
    Ec(&'static EcdsaSigningAlgorithm, &'static str, usize),
    Ed25519,
}

impl Family {
    fn of(alg: Algorithm) -> Option<Self> {
        match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => Some(Self::Rsa),
            Algorithm::ES256 => Some(Self::Ec(&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)),
            Algorithm::ES384 => Some(Self::Ec(&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)),
            Algorithm::EdDSA => Some(Self::Ed25519),
            // HMAC (and any algorithm jsonwebtoken adds later) cannot sign with a key file.
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Rsa => "an RSA key of at least 2048 bits",
            Self::Ec(_, "P-256", _) => "an EC P-256 key",
            Self::Ec(..) => "an EC P-384 key",
            Self::Ed25519 => "an Ed25519 key",
        }
    }
}

impl KeySet {
    /// Loads `signing_key` (a private key, in a file readable by its owner only) and
    /// `verify_keys` (public or private keys of earlier generations, still accepted).
    pub fn load(
        algorithm: Algorithm,
        signing_key: &Path,
        verify_keys: &[PathBuf],
    ) -> Result<KeySet, KeyError> {
        let family = Family::of(algorithm).ok_or(KeyError::UnsupportedAlgorithm(algorithm))?;
        crate::keygen::check_private(signing_key)?;
        let read = |role, path: &Path| {
            let name = KeyName {
                role,
                file: Some(path.to_path_buf()),
            };
            let text = std::fs::read(path).map_err(|e| KeyError::Read(name.clone(), e))?;
            parse_pem(name, &text)
        };
        let signing = read(KeyRole::Signing, signing_key)?;
        let verify =
            (verify_keys.iter().enumerate()).map(|(i, path)| read(KeyRole::Verify(i), path));
        Self::build(algorithm, family, signing, verify)
    }

    /// The key set of `signing_pem` (a private key) and `verify_pems` (public or private keys),
    /// PEM text in memory: what `load` makes of the files holding them.
    pub fn from_pem(
        algorithm: Algorithm,
        signing_pem: &[u8],
        verify_pems: &[&[u8]],
    ) -> Result<KeySet, KeyError> {
        let family = Family::of(algorithm).ok_or(KeyError::UnsupportedAlgorithm(algorithm))?;
        let in_memory = |role| KeyName { role, file: None };
        let signing = parse_pem(in_memory(KeyRole::Signing), signing_pem)?;
        let verify = (verify_pems.iter().enumerate())
            .map(|(i, pem)| parse_pem(in_memory(KeyRole::Verify(i)), pem));
        Self::build(algorithm, family, signing, verify)
    }

    /// The set of the parsed signing key and the verify keys, which are read (and refused)
    /// one by one, in their order, after the signing key.
    fn build(
        algorithm: Algorithm,
        family: Family,
        (signing_name, pem): (KeyName, pem::Pem),
        verify: impl Iterator<Item = Result<(KeyName, pem::Pem), KeyError>>,
    ) -> Result<KeySet, KeyError> {
        let (signer, public, decoding) = private_key(&signing_name, &pem, family, algorithm)?;
        let header =
            serde_json::json!({"alg": format!("{algorithm:?}"), "kid": public.kid, "typ": "JWT"});
        let mut set = KeySet {
            algorithm,
            signer,
            header_b64: b64(header.to_string().as_bytes()),
            signing_kid: public.kid.clone(),
            verifying: HashMap::new(),
            public: Vec::new(),
        };
        set.add(public, parsed(algorithm, &signing_name, &decoding)?);
        for key in verify {
            let (name, pem) = key?;
            let (public, decoding) = if pem.tag() == "PUBLIC KEY" {
                public_key(&name, &pem, family)?
            } else {
                let (_, public, decoding) = private_key(&name, &pem, family, algorithm)?;
                (public, decoding)
            };
            set.add(public, parsed(algorithm, &name, &decoding)?);
        }
        Ok(set)
    }

    fn add(&mut self, public: PublicKey, decoding: ParsedPublicKey) {
        if self
            .verifying
            .insert(public.kid.clone(), decoding)
            .is_none()
        {
            self.public.push(public);
        }
    }

    /// Signs `claims` as a compact JWS with the signing key: `header.payload.signature`.
    pub fn sign<T: serde::Serialize>(&self, claims: &T) -> Result<String, SignError> {
        let payload = serde_json::to_vec(claims).map_err(|_| SignError)?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 400);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self.signer.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }

    /// The `kid` new tokens carry.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    /// The verification key for `kid`, if it is one of ours.
    pub fn verifying(&self, kid: &str) -> Option<&ParsedPublicKey> {
        self.verifying.get(kid)
    }

    /// Every public key that verifies, the signing key's first.
    pub fn public_keys(&self) -> &[PublicKey] {
        &self.public
    }
}

/// A parsed private key, kept for the snapshot's life so that signing never re-parses it.
enum Signer {
    Rsa(rsa::KeyPair, &'static dyn RsaEncoding),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match self {
            Self::Rsa(pair, encoding) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(*encoding, &rng, message, &mut signature)
                    .map_err(|_| SignError)?;
                Ok(signature)
            }
            Self::Ec(pair) => Ok(pair
                .sign(&rng, message)
                .map_err(|_| SignError)?
                .as_ref()
                .to_vec()),
            Self::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Rsa(..) => "Signer::Rsa",
            Self::Ec(_) => "Signer::Ec",
            Self::Ed(_) => "Signer::Ed",
        })
    }
}

/// The signature primitive failed (never expected with a key that loaded).
#[derive(Debug, thiserror::Error)]
#[error("signing failed")]
pub struct SignError;

/// The RSA padding and digest of an RS* or PS* algorithm.
/// A verification key of `algorithm`, parsed once from `bytes` (a DER SubjectPublicKeyInfo, an
/// uncompressed EC point or a raw Ed25519 key), so that no verification parses it again.
fn parsed(algorithm: Algorithm, name: &KeyName, bytes: &[u8]) -> Result<ParsedPublicKey, KeyError> {
    use aws_lc_rs::signature as s;
    let verification: &'static dyn VerificationAlgorithm = match algorithm {
        Algorithm::RS256 => &s::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &s::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &s::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &s::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &s::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &s::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &s::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &s::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &s::ED25519,
        // HMAC (no public key) and whatever jsonwebtoken adds later.
        _ => return Err(KeyError::UnsupportedAlgorithm(algorithm)),
    };
    ParsedPublicKey::new(verification, bytes).map_err(|_| KeyError::Parse(name.clone()))
}

fn rsa_encoding(algorithm: Algorithm) -> &'static dyn RsaEncoding {
    use aws_lc_rs::signature as s;
    match algorithm {
        Algorithm::RS256 => &s::RSA_PKCS1_SHA256,
        Algorithm::RS384 => &s::RSA_PKCS1_SHA384,
        Algorithm::PS256 => &s::RSA_PSS_SHA256,
        Algorithm::PS384 => &s::RSA_PSS_SHA384,
        Algorithm::PS512 => &s::RSA_PSS_SHA512,
        _ => &s::RSA_PKCS1_SHA512,
    }
}

/// Upper-case hex SHA-1 of a DER SubjectPublicKeyInfo.
pub fn kid_of(spki_der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, spki_der);
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn parse_pem(name: KeyName, text: &[u8]) -> Result<(KeyName, pem::Pem), KeyError> {
    match pem::parse(text) {
        Ok(pem) => Ok((name, pem)),
        Err(_) => Err(KeyError::Parse(name)),
    }
}

/// A private key of `family`: its signing key, public JWK parameters and verification key.
fn private_key(
    name: &KeyName,
    pem: &pem::Pem,
    family: Family,
    algorithm: Algorithm,
) -> Result<(Signer, PublicKey, Vec<u8>), KeyError> {
    let wrong = || KeyError::WrongType(name.clone(), family.name());
    let der = pem.contents();
    match family {
        Family::Rsa => {
            let pair = match pem.tag() {
                "PRIVATE KEY" => rsa::KeyPair::from_pkcs8(der),
                "RSA PRIVATE KEY" => rsa::KeyPair::from_der(der),
                _ => return Err(wrong()),
            }
            .map_err(|_| wrong())?;
            let (public, decoding) = rsa_public(name, pair.public_key())?;
            Ok((Signer::Rsa(pair, rsa_encoding(algorithm)), public, decoding))
        }
        Family::Ec(alg, crv, len) => {
            let pair = match pem.tag() {
                "PRIVATE KEY" => EcdsaKeyPair::from_pkcs8(alg, der),
                "EC PRIVATE KEY" => EcdsaKeyPair::from_private_key_der(alg, der),
                _ => return Err(wrong()),
            }
            .map_err(|_| wrong())?;
            let spki = pair.public_key().as_der().map_err(|_| wrong())?;
            let (public, decoding) =
                ec_public(name, spki.as_ref(), pair.public_key().as_ref(), crv, len)?;
            Ok((Signer::Ec(pair), public, decoding))
        }
        Family::Ed25519 => {
            if pem.tag() != "PRIVATE KEY" {
                return Err(wrong());
            }
            // OpenSSL writes PKCS#8 v1 (no public key); accept it.
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| wrong())?;
            let spki = pair.public_key().as_der().map_err(|_| wrong())?;
            let raw = pair.public_key().as_ref();
            let public = PublicKey {
                kid: kid_of(spki.as_ref()),
                params: KeyParams::Okp {
                    crv: "Ed25519",
                    x: b64(raw),
                },
            };
            let decoding = raw.to_vec();
            Ok((Signer::Ed(pair), public, decoding))
        }
    }
}

/// A `PUBLIC KEY` (SPKI) PEM of `family`.
fn public_key(
    name: &KeyName,
    pem: &pem::Pem,
    family: Family,
) -> Result<(PublicKey, Vec<u8>), KeyError> {
    let wrong = || KeyError::WrongType(name.clone(), family.name());
    let text = pem::encode(pem);
    match family {
        Family::Rsa => {
            let key = rsa::PublicKey::from_der(pem.contents()).map_err(|_| wrong())?;
            rsa_public(name, &key)
        }
        Family::Ec(_, crv, len) => {
            let point = DecodingKey::from_ec_pem(text.as_bytes()).map_err(|_| wrong())?;
            let point = point.try_get_as_bytes().map_err(|_| wrong())?.to_vec();
            ec_public(name, pem.contents(), &point, crv, len)
        }
        Family::Ed25519 => {
            let key = DecodingKey::from_ed_pem(text.as_bytes()).map_err(|_| wrong())?;
            let raw = key.try_get_as_bytes().map_err(|_| wrong())?;
            if raw.len() != 32 {
                return Err(wrong());
            }
            let public = PublicKey {
                kid: kid_of(pem.contents()),
                params: KeyParams::Okp {
                    crv: "Ed25519",
                    x: b64(raw),
                },
            };
            Ok((public, raw.to_vec()))
        }
    }
}

fn rsa_public(name: &KeyName, key: &rsa::PublicKey) -> Result<(PublicKey, Vec<u8>), KeyError> {
    if key.modulus_len() < 256 {
        return Err(KeyError::WrongType(name.clone(), Family::Rsa.name()));
    }
    let spki = key.as_der().map_err(|_| KeyError::Parse(name.clone()))?;
    let n = key.modulus().big_endian_without_leading_zero();
    let e = key.exponent().big_endian_without_leading_zero();
    let public = PublicKey {
        kid: kid_of(spki.as_ref()),
        params: KeyParams::Rsa {
            n: b64(n),
            e: b64(e),
        },
    };
    Ok((public, spki.as_ref().to_vec()))
}

/// `point` is the uncompressed SEC1 point `04 || x || y` with coordinates of `len` bytes.
fn ec_public(
    name: &KeyName,
    spki: &[u8],
    point: &[u8],
    crv: &'static str,
    len: usize,
) -> Result<(PublicKey, Vec<u8>), KeyError> {
    if point.len() != 1 + 2 * len || point[0] != 0x04 {
        return Err(KeyError::Parse(name.clone()));
    }
    let public = PublicKey {
        kid: kid_of(spki),
        params: KeyParams::Ec {
            crv,
            x: b64(&point[1..=len]),
            y: b64(&point[1 + len..]),
        },
    };
    Ok((public, point.to_vec()))
}

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {0}")]
    Read(KeyName, #[source] std::io::Error),
    /// The signing key's file is readable by group or others.
    #[error(transparent)]
    Permissions(#[from] crate::keygen::NotPrivate),
    #[error("{0} is not a PEM key")]
    Parse(KeyName),
    #[error("{0} is not {1} (as tokens.algorithm needs)")]
    WrongType(KeyName, &'static str),
    #[error("{0:?} is not an algorithm for signing tokens")]
    UnsupportedAlgorithm(Algorithm),
}

impl KeyError {
    /// The key the problem is with; `None` when it is the algorithm.
    pub fn key(&self) -> Option<KeyRole> {
        match self {
            Self::Read(name, _) | Self::Parse(name) | Self::WrongType(name, _) => Some(name.role),
            Self::Permissions(_) => Some(KeyRole::Signing),
            Self::UnsupportedAlgorithm(_) => None,
        }
    }
}

/// Which key of a set an error is about, and the file it came from (none for PEM in memory).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct KeyName {
    pub role: KeyRole,
    pub file: Option<PathBuf>,
}

/// The signing key, or the verify key at this index of its list.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum KeyRole {
    Signing,
    Verify(usize),
}

impl std::fmt::Display for KeyName {
    /// The file's path; for a key given in memory, its place in the set.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.file, self.role) {
            (Some(path), _) => write!(f, "{}", path.display()),
            (None, KeyRole::Signing) => f.write_str("the signing key"),
            (None, KeyRole::Verify(i)) => write!(f, "verify key {i}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(algorithm: Algorithm) -> String {
        crate::keygen::signing_key_pem_for(algorithm).unwrap()
    }

    #[test]
    fn kid_is_upper_hex_sha1() {
        // SHA-1("abc") = a9993e36...
        assert_eq!(kid_of(b"abc"), "A9993E364706816ABA3E25717850C26C9CD0D89D");
    }

    #[test]
    fn a_set_from_pem_signs_and_keeps_older_keys_for_verifying() {
        let (old, new) = (pem(Algorithm::ES256), pem(Algorithm::ES256));
        let before = KeySet::from_pem(Algorithm::ES256, old.as_bytes(), &[]).unwrap();
        let after = KeySet::from_pem(Algorithm::ES256, new.as_bytes(), &[old.as_bytes()]).unwrap();
        assert_ne!(after.signing_kid(), before.signing_kid());
        let kids: Vec<&str> = after.public_keys().iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, [after.signing_kid(), before.signing_kid()]);
        assert!(after.verifying(before.signing_kid()).is_some());
        let token = after.sign(&serde_json::json!({"sub": "alice"})).unwrap();
        assert_eq!(token.split('.').count(), 3);
    }

    #[test]
    fn every_algorithm_loads_its_own_key_type_from_pem() {
        for algorithm in [
            Algorithm::RS256,
            Algorithm::PS512,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
        ] {
            let set = KeySet::from_pem(algorithm, pem(algorithm).as_bytes(), &[]).unwrap();
            assert_eq!(set.algorithm, algorithm);
            assert!(set.sign(&serde_json::json!({})).is_ok(), "{algorithm:?}");
        }
    }

    #[test]
    fn errors_name_the_key_they_are_about() {
        let ed = pem(Algorithm::EdDSA);
        let err = KeySet::from_pem(Algorithm::ES256, ed.as_bytes(), &[]).unwrap_err();
        assert!(matches!(err, KeyError::WrongType(..)), "{err:?}");
        assert_eq!(err.key(), Some(KeyRole::Signing));
        assert_eq!(
            err.to_string(),
            "the signing key is not an EC P-256 key (as tokens.algorithm needs)"
        );

        let es = pem(Algorithm::ES256);
        let err = KeySet::from_pem(Algorithm::ES256, es.as_bytes(), &[ed.as_bytes(), b"junk"]);
        let err = err.unwrap_err();
        assert_eq!(
            err.key(),
            Some(KeyRole::Verify(0)),
            "checked in order: {err:?}"
        );
        let err = KeySet::from_pem(Algorithm::ES256, es.as_bytes(), &[es.as_bytes(), b"junk"]);
        let err = err.unwrap_err();
        assert!(matches!(err, KeyError::Parse(_)), "{err:?}");
        assert_eq!(err.key(), Some(KeyRole::Verify(1)));
        assert_eq!(err.to_string(), "verify key 1 is not a PEM key");

        let err = KeySet::from_pem(Algorithm::HS256, es.as_bytes(), &[]).unwrap_err();
        assert_eq!(err.key(), None);
    }
}
