//! `remote add`, `remote list` and `remote remove`.

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use super::sync::*;
use crate::ui::{Ui, exit, fail};
use crate::workdir::{RemoteConfig, Workdir};

fn check_remote_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(['/', '~', '^', ':', ' ', '.']) {
        return Err(fail(format!("{name:?} is not a usable remote name"))
            .hint("use letters, digits, '-' and '_'")
            .code(exit::USAGE)
            .into());
    }
    Ok(())
}

pub fn remote_add(base: &Path, name: &str, url: &str, ui: Ui) -> Result<i32> {
    check_remote_name(name)?;
    let mut wd = Workdir::find(base)?;
    let url = absolute_url(base, url)?;
    let url = url.as_str();
    if let Some(r) = wd.config.remotes.get(name) {
        return Err(fail(format!("remote {name} already exists ({})", r.url))
            .hint(format!("`dsf-cli remote remove {name}` first"))
            .into());
    }
    wd.config.remotes.insert(name.to_owned(), RemoteConfig { url: url.to_owned() });
    wd.save_config()?;
    ui.say(format!("Added remote {name} → {url}"));
    ui.emit(json!({ "name": name, "url": url }));
    Ok(exit::OK)
}

pub fn remote_list(base: &Path, ui: Ui) -> Result<i32> {
    let wd = Workdir::find(base)?;
    for (name, r) in &wd.config.remotes {
        ui.out(format!("{name}\t{}", r.url));
    }
    ui.emit(json!({
        "remotes": wd.config.remotes.iter().map(|(n, r)| json!({"name": n, "url": r.url})).collect::<Vec<_>>(),
    }));
    Ok(exit::OK)
}

pub fn remote_remove(base: &Path, name: &str, ui: Ui) -> Result<i32> {
    let mut wd = Workdir::find(base)?;
    if wd.config.remotes.remove(name).is_none() {
        return Err(unknown_remote(&wd, name).into());
    }
    wd.save_config()?;
    wd.remove_remote_heads(name)?;
    ui.say(format!("Removed remote {name}"));
    ui.emit(json!({ "removed": name }));
    Ok(exit::OK)
}
