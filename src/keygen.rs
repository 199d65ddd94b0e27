//! Generating key material at run time: the TLS certificate and the JWT signing key.
//!
//! Used by `portcullis init`, `portcullis demo` and the tests. Nothing generated here is ever
//! committed; private keys are written with mode 0600.

use std::io::Write;
use std::path::Path;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};

/// A self-signed certificate for `hosts` (DNS names or IP addresses): (certificate PEM, key PEM).
pub fn self_signed(hosts: &[String]) -> Result<(String, String), KeygenError> {
    let certified =
        rcgen::generate_simple_self_signed(hosts.to_vec()).map_err(KeygenError::Cert)?;
    Ok((certified.cert.pem(), certified.signing_key.serialize_pem()))
}

/// A new RSA-2048 private key as PKCS#8 PEM.
pub fn signing_key_pem() -> Result<String, KeygenError> {
    signing_key_pem_for(jsonwebtoken::Algorithm::RS512)
}

/// A new private key (PKCS#8 PEM) of the type `algorithm` signs with: RSA-2048, P-256, P-384
/// or Ed25519.
pub fn signing_key_pem_for(algorithm: jsonwebtoken::Algorithm) -> Result<String, KeygenError> {
    use aws_lc_rs::signature::{
        EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
        ECDSA_P384_SHA384_FIXED_SIGNING,
    };
    use jsonwebtoken::Algorithm;
    let failed = |_| KeygenError::Key(algorithm);
    let der: Vec<u8> = match algorithm {
        Algorithm::ES256 | Algorithm::ES384 => {
            let alg = if algorithm == Algorithm::ES256 {
                &ECDSA_P256_SHA256_FIXED_SIGNING
            } else {
                &ECDSA_P384_SHA384_FIXED_SIGNING
            };
            let pair = EcdsaKeyPair::generate(alg).map_err(failed)?;
            pair.to_pkcs8v1().map_err(failed)?.as_ref().to_vec()
        }
        Algorithm::EdDSA => {
            let pair = Ed25519KeyPair::generate().map_err(failed)?;
            pair.to_pkcs8().map_err(failed)?.as_ref().to_vec()
        }
        _ => {
            let pair = KeyPair::generate(KeySize::Rsa2048).map_err(failed)?;
            AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
                .map_err(failed)?
                .as_ref()
                .to_vec()
        }
    };
    Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", der)))
}

/// Writes `contents` to a new file at `path` readable by its owner only (mode 0600),
/// replacing an existing file.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // `mode` applies only when the file is created; tighten an existing one too.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    options.open(path)?.write_all(contents)
}

#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("cannot generate the certificate")]
    Cert(#[source] rcgen::Error),
    #[error("cannot generate a {0:?} key")]
    Key(jsonwebtoken::Algorithm),
}
