//! `[login]`, `[[users]]` and the users file.

use std::collections::HashSet;
use std::path::Path;

use super::Checker;
use crate::config::defaults as d;
use crate::config::raw;
use crate::config::{LoginConfig, UserConfig};

pub(super) fn login(c: &mut Checker, raw: raw::Login) -> LoginConfig {
    let cfg = LoginConfig {
        max_failures: c.positive(d::LOGIN_MAX_FAILURES, raw.max_failures, 1_000_000) as u32,
        window: c.span(d::LOGIN_WINDOW, raw.window.as_deref()),
        lockout: c.span(d::LOGIN_LOCKOUT, raw.lockout.as_deref()),
        users_file: c.optional_path(raw.users_file),
    };
    cfg
}

pub(super) fn users(c: &mut Checker, prefix: &str, raw: Vec<raw::User>) -> Vec<UserConfig> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, u) in raw.into_iter().enumerate() {
        let key = format!("{prefix}[{i}]");
        let name = u.name.unwrap_or_default();
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            c.issue(
                format!("{key}.name"),
                "must be 1 to 256 printable characters",
            );
        }
        let issues = c.issue_count();
        let hash = c
            .secret(
                &format!("{key}.password_hash"),
                u.password_hash,
                u.password_hash_file,
            )
            .unwrap_or_default();
        match argon2::PasswordHash::new(&hash) {
            Ok(phc) if phc.algorithm.as_str() == "argon2id" && phc.hash.is_some() => {}
            // The file could not be read: that is the problem to report.
            _ if c.issue_count() > issues => {}
            Ok(_) | Err(_) => c.issue(
                format!("{key}.password_hash"),
                "expected an argon2id PHC string ($argon2id$v=19$...); make one with \
                 `portcullis hash-password`",
            ),
        }
        out.push(UserConfig {
            name,
            password_hash: hash,
            roles: u.roles,
        });
    }
    out
}

pub(super) fn users_file(c: &mut Checker, path: &Path) -> Vec<UserConfig> {
    let key = "login.users_file";
    // Password hashes are secrets too: the file is refused, like the signing key, if group or
    // others may read it.
    if let Err(e) = crate::keygen::check_private(path) {
        c.issue(key, e.to_string());
        return Vec::new();
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            c.issue(key, format!("cannot read {}: {e}", path.display()));
            return Vec::new();
        }
    };
    match toml::from_str::<raw::UsersFile>(&text) {
        Ok(file) => users(c, &format!("{key}: users"), file.users),
        Err(e) => {
            c.issue(
                key,
                format!("{}: {}", path.display(), e.to_string().trim_end()),
            );
            Vec::new()
        }
    }
}

pub(super) fn check_unique_users(c: &mut Checker, users: &[UserConfig]) {
    let mut seen = HashSet::new();
    for user in users {
        if !user.name.is_empty() && !seen.insert(user.name.as_str()) {
            c.issue(
                "users",
                format!("user {:?} is defined more than once", user.name),
            );
        }
    }
}
