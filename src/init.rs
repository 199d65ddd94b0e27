//! `portcullis init`: a certificate, a signing key, a starter configuration and a first user.
//!
//! Writes `DIR/certs/gateway.crt` (self-signed, CN = the first host, valid `--days`),
//! `DIR/certs/gateway.key` and `DIR/certs/signing.pem` (both
//! keys 0600), `DIR/config/portcullis.toml` and `DIR/config/users.toml` (0600, user `admin` with
//! a random password printed once). The gateway refuses the keys and the users file if group or
//! others can read them. Refuses to touch anything if one of them exists, unless `--force`; a
//! `portcullis.toml` identical to the one it would write is not in the way.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::keygen;

/// The starter configuration: the same file as the repository's `config/portcullis.toml`.
pub const CONFIG_TEMPLATE: &str = include_str!("../config/portcullis.toml");

/// The files `init` writes, relative to DIR, and whether each is private.
#[derive(Debug)]
pub struct Layout {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub signing: PathBuf,
    pub config: PathBuf,
    pub users: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Self {
        Self {
            cert: dir.join("certs/gateway.crt"),
            key: dir.join("certs/gateway.key"),
            signing: dir.join("certs/signing.pem"),
            config: dir.join("config/portcullis.toml"),
            users: dir.join("config/users.toml"),
        }
    }
}

/// A random password: 24 characters of `[A-Za-z0-9]`, safe to paste into a shell.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 24];
    // The system RNG failing is not recoverable; fall back to UUID randomness rather than panic.
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// The TOML of a users file with one user.
pub fn users_toml(name: &str, password: &str, roles: &[&str]) -> String {
    let hash = crate::login::hash_password(password.as_bytes());
    let roles: Vec<String> = roles.iter().map(|r| format!("{r:?}")).collect();
    format!(
        "# Users who may log in. Add one with: portcullis hash-password\n\
         [[users]]\nname = {name:?}\npassword_hash = {hash:?}\nroles = [{}]\n",
        roles.join(", ")
    )
}

/// What `portcullis init` is asked for: the hosts the certificate names and how long it is
/// valid.
#[derive(Debug)]
pub struct CertRequest<'a> {
    pub hosts: &'a [String],
    pub days: u32,
}

pub fn run(dir: &Path, cert: &CertRequest<'_>, force: bool) -> anyhow::Result<()> {
    let layout = Layout::new(dir);
    if !force {
        let in_the_way: Vec<String> =
            [&layout.cert, &layout.key, &layout.signing, &layout.users]
                .into_iter()
                .filter(|p| p.exists())
                .chain(std::iter::once(&layout.config).filter(|p| {
                    std::fs::read_to_string(p).is_ok_and(|text| text != CONFIG_TEMPLATE)
                }))
                .map(|p| p.display().to_string())
                .collect();
        anyhow::ensure!(
            in_the_way.is_empty(),
            "nothing written: these files exist (use --force to replace them):\n  {}",
            in_the_way.join("\n  ")
        );
    }
    let password = write(&layout, cert)?;
    println!("wrote {}", layout.cert.display());
    println!("wrote {} (0600)", layout.key.display());
    println!("wrote {} (0600)", layout.signing.display());
    println!("wrote {}", layout.config.display());
    println!(
        "wrote {} (0600): user \"admin\", password {password}",
        layout.users.display()
    );
    println!("\nnext: portcullis check -c {}", layout.config.display());
    Ok(())
}

/// Writes every file of `layout`; returns the admin password.
pub fn write(layout: &Layout, cert: &CertRequest<'_>) -> anyhow::Result<String> {
    for p in [&layout.cert, &layout.config] {
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
    }
    anyhow::ensure!(!cert.hosts.is_empty(), "--hosts names no host");
    let (cert, key) = keygen::self_signed(cert.hosts, cert.days)?;
    let signing = keygen::signing_key_pem()?;
    let password = random_password();
    let write_err = |p: &Path| format!("cannot write {}", p.display());
    std::fs::write(&layout.cert, cert).with_context(|| write_err(&layout.cert))?;
    keygen::write_private(&layout.key, key.as_bytes()).with_context(|| write_err(&layout.key))?;
    keygen::write_private(&layout.signing, signing.as_bytes())
        .with_context(|| write_err(&layout.signing))?;
    std::fs::write(&layout.config, CONFIG_TEMPLATE).with_context(|| write_err(&layout.config))?;
    keygen::write_private(
        &layout.users,
        users_toml("admin", &password, &["admin"]).as_bytes(),
    )
    .with_context(|| write_err(&layout.users))?;
    Ok(password)
}
