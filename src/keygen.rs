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
    let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeygenError::Rsa)?;
    let der =
        AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).map_err(|_| KeygenError::Rsa)?;
    Ok(pem::encode(&pem::Pem::new(
        "PRIVATE KEY",
        der.as_ref().to_vec(),
    )))
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
    #[error("cannot generate the RSA key")]
    Rsa,
}
