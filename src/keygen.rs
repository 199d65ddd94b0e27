//! Generating key material at run time (the TLS certificate and the JWT signing key), and the
//! one rule for private files: written with mode 0600 ([`write_private`], [`ensure_private`]),
//! refused when group or others may access them ([`check_private`]).
//!
//! Used by `portcullis init`, `portcullis demo` and the tests. Nothing generated here is ever
//! committed.

use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};

/// A self-signed certificate for `hosts` (DNS names or IP addresses), valid from now for
/// `days` days, with the first host as its common name: (certificate PEM, key PEM).
pub fn self_signed(hosts: &[String], days: u32) -> Result<(String, String), KeygenError> {
    let mut params = rcgen::CertificateParams::new(hosts.to_vec()).map_err(KeygenError::Cert)?;
    let mut name = rcgen::DistinguishedName::new();
    if let Some(first) = hosts.first() {
        name.push(rcgen::DnType::CommonName, first.as_str());
    }
    params.distinguished_name = name;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(i64::from(days));
    let key = rcgen::KeyPair::generate().map_err(KeygenError::Cert)?;
    let cert = params.self_signed(&key).map_err(KeygenError::Cert)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// How long `portcullis init` and `portcullis demo` certificates are valid by default.
pub const CERT_DAYS: u32 = 365;

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
            AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&pair)
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
    ensure_private(path)?;
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?
        .write_all(contents)
}

/// Makes `path` a file readable by its owner only: created empty with mode 0600 if it does not
/// exist, its mode tightened to 0600 if group or others may access it. Returns whether an
/// existing file had to be tightened. (Elsewhere than on Unix: only creates it.)
pub fn ensure_private(path: &Path) -> std::io::Result<bool> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // `mode` applies only when the file is created; an existing one is tightened below.
        options.mode(0o600);
    }
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if file.metadata()?.permissions().mode() & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Refuses a private file (a key, the users file) that group or others may access. A file that
/// cannot be examined passes: reading it reports why. (Elsewhere than on Unix: always `Ok`.)
pub fn check_private(path: &Path) -> Result<(), NotPrivate> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(NotPrivate {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// A file that must be private but that group or others may access.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} is readable by group or others (mode {:o}); run `chmod 600 {}`",
    .path.display(), .mode, .path.display()
)]
pub struct NotPrivate {
    pub path: PathBuf,
    pub mode: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("cannot generate the certificate")]
    Cert(#[source] rcgen::Error),
    #[error("cannot generate a {0:?} key")]
    Key(jsonwebtoken::Algorithm),
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_files_are_created_and_kept_0600() {
        let dir = std::env::temp_dir().join(format!("portcullis-keygen-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        assert!(!ensure_private(&path).unwrap(), "created, not tightened");
        assert_eq!(mode(&path), 0o600);
        check_private(&path).unwrap();

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = check_private(&path).unwrap_err();
        assert_eq!(err.mode, 0o644);
        assert!(err.to_string().contains("chmod 600"), "{err}");
        write_private(&path, b"x").unwrap();
        assert_eq!(
            (mode(&path), std::fs::read(&path).unwrap()),
            (0o600, b"x".to_vec())
        );

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(ensure_private(&path).unwrap(), "tightened");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"x", "the contents are kept");
        check_private(&dir.join("missing")).unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}
