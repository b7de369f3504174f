//! `init`: a new, empty working copy.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dsf::HashAlgorithm;
use serde_json::json;

use crate::ui::{Ui, exit, fail};
use crate::workdir::Workdir;

pub fn init(base: &Path, dir: Option<PathBuf>, algorithm: &str, key: Option<String>, ui: Ui) -> Result<i32> {
    let dir = dir.map_or_else(|| base.to_path_buf(), |d| base.join(d));
    let alg: HashAlgorithm = algorithm.parse().map_err(|e: String| fail(e).code(exit::USAGE))?;
    let key = key.unwrap_or_else(|| uuid::Uuid::new_v4().to_string().to_uppercase());
    check_repository_key(&key)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let wd = Workdir::create(&dir, &key, alg)?;
    ui.say(format!("Initialised an empty {} repository {} in {}", alg.name(), ui.key(&key), wd.dir.display()));
    ui.say("Next: put an object graph in root.json (`dsf-cli import FILE`), then `dsf-cli commit -m MESSAGE`.");
    ui.emit(json!({ "repository": key, "algorithm": alg.name(), "dir": wd.dir }));
    Ok(exit::OK)
}

pub fn check_repository_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 200 || key.chars().any(|c| c.is_control() || c == '/' || c.is_whitespace()) {
        return Err(fail(format!("{key:?} is not a usable repository key"))
            .hint("use letters, digits and dashes (a UUID, as ION does)")
            .code(exit::USAGE)
            .into());
    }
    Ok(())
}
