//! `commit`: root.json as a new commit of the current branch.

use std::path::Path;

use anyhow::Result;
use dsf::Key;
use dsf::json;
use serde_json::json;

use super::*;
use crate::session::{Session, Stored};
use crate::ui::{Ui, exit, fail};
use crate::workdir::DOCUMENT;

pub async fn commit(base: &Path, message: &str, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    if s.state().merge.is_some() {
        return Err(fail("a merge is in progress")
            .hint("resolve its conflicts, then `dsf-cli merge --continue -m MESSAGE` (or `dsf-cli merge --abort`)")
            .into());
    }
    let mut sr = s.repo().await?;
    let head = s.load_current(&mut sr).await?;
    if s.state().detached {
        return Err(fail("a detached checkout is read only")
            .hint("make a branch here with `dsf-cli checkout -b NAME`, then commit")
            .into());
    }
    let doc = s.wd.read_document()?.ok_or_else(|| {
        fail(format!("nothing to commit: there is no {DOCUMENT}")).hint("`dsf-cli import FILE` writes one")
    })?;
    let mut progress = ui.progress("reading root.json", None);
    let parsed = s.parse(&mut sr, doc).await?;
    progress.add(parsed.new_elements.len() as u64);
    progress.finish();
    if let Some(h) = head
        && Session::root_of(sr.repository(), h)? == parsed.root
    {
        return Err(fail(format!("nothing to commit: {DOCUMENT} matches commit {}", h.to_hex()))
            .hint("edit root.json first")
            .into());
    }
    let new = parsed.new_elements.len();
    let key = record(&s, &mut sr, parsed, message).await?;
    ui.say(format!(
        "[{} {}] {message} ({new} new object{})",
        ui.branch(&s.branch_name(sr.repository(), s.state().branch.as_deref().unwrap_or("master"))),
        ui.key(&short(&key)),
        if new == 1 { "" } else { "s" }
    ));
    ui.emit(json!({ "commit": key.to_hex(), "new_objects": new }));
    Ok(exit::OK)
}

/// Commits a parsed document (after a merge, with its pending merge parent), saves, and
/// rewrites the document from the commit when some `@key` is out of date.
pub async fn record(s: &Session, sr: &mut Stored<'_>, parsed: json::Parsed, message: &str) -> Result<Key> {
    let stale = parsed.stale_keys;
    let repo = sr.repository_mut();
    repo.add_elements(parsed.new_elements)?;
    let id = repo.adopt(parsed.root)?;
    repo.set_root(id)?;
    let key = repo.commit(message)?;
    sr.save().await?;
    s.state_mut().branch = sr.repository().current_branch_key().map(str::to_owned);
    s.state_mut().detached = false;
    s.state_mut().merge = None;
    if stale == 0 {
        s.state_mut().commit = Some(key.to_hex());
        s.save_state()?;
    } else {
        s.write_checkout(sr.repository(), key)?;
    }
    Ok(key)
}
