//! SIGHUP: load → validate → build a `Snapshot` → swap it in. On any error the old snapshot
//! keeps serving and the error is returned for the log. The signal loop that calls this is
//! `run.rs`'s.

use std::path::Path;

use crate::config::{Config, ConfigErrors};
use crate::state::{Shared, Snapshot};

/// Re-reads `path` and, if the whole configuration is valid, makes it current. Either way it
/// is counted in `portcullis_config_reloads_total`.
pub fn reload(shared: &Shared, path: &Path) -> Result<(), ConfigErrors> {
    let result = Config::load(path).and_then(Snapshot::build);
    shared.metrics.reloaded(result.is_ok(), shared.clock.unix());
    shared.replace(result?);
    Ok(())
}
