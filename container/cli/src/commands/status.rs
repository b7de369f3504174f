//! `status` and `diff`: what changed, field by field.

use std::path::Path;

use anyhow::Result;
use dsf::Key;
use dsf::json;
use dsf::merge::{Change, ChangeKind};
use serde_json::{Value as Json, json};

use super::*;
use crate::session::{Session, Stored};
use crate::ui::{Ui, exit, fail};
use crate::workdir::DOCUMENT;

pub fn change_json(c: &Change) -> Json {
    let kind = match c.kind {
        ChangeKind::Added => "added",
        ChangeKind::Removed => "removed",
        ChangeKind::Modified => "modified",
    };
    json!({ "path": c.path, "kind": kind, "before": c.before, "after": c.after })
}

pub fn print_changes(ui: &Ui, changes: &[Change]) {
    for c in changes {
        let line = match c.kind {
            ChangeKind::Added => ui.green(&format!("+ {}: {}", c.path, c.after.as_deref().unwrap_or(""))),
            ChangeKind::Removed => ui.red(&format!("- {}: {}", c.path, c.before.as_deref().unwrap_or(""))),
            ChangeKind::Modified => format!(
                "{} {}: {} → {}",
                ui.key("~"),
                c.path,
                ui.red(c.before.as_deref().unwrap_or("")),
                ui.green(c.after.as_deref().unwrap_or(""))
            ),
        };
        ui.out(format!("  {line}"));
    }
}

/// The document's changes against the checked-out commit (`None`: no document).
pub async fn working_changes(
    s: &Session,
    sr: &mut Stored<'_>,
    head: Option<Key>,
    doc: Option<Json>,
) -> Result<Option<(Key, Vec<Change>)>> {
    let Some(doc) = doc else { return Ok(None) };
    let parsed = s.parse(sr, doc).await?;
    let root = parsed.root;
    sr.repository_mut().add_elements(parsed.new_elements)?;
    let repo = sr.repository();
    let changes = match head {
        Some(h) => dsf::merge::diff_graphs(&s.registry, repo.elements(), Session::root_of(repo, h)?, root)?,
        None => {
            vec![Change { path: "root".into(), kind: ChangeKind::Added, before: None, after: Some("new graph".into()) }]
        }
    };
    Ok(Some((root, changes)))
}

pub async fn status(base: &Path, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    let mut sr = s.repo().await?;
    let head = s.load_current(&mut sr).await?;
    let state = s.state().clone();
    let repo_branch = sr.repository().current_branch_key().map(str::to_owned);
    let branch = state.branch.clone().or(repo_branch);
    let branch_name = branch.as_deref().map(|b| s.branch_name(sr.repository(), b));
    let mut out = json!({
        "repository": s.wd.config.repository,
        "branch": branch_name,
        "detached": state.detached,
        "commit": head.map(|h| h.to_hex()),
    });
    match (&branch_name, state.detached, head) {
        (_, true, Some(h)) => ui.say(format!("Detached at {} (read only)", ui.key(&h.to_hex()))),
        (Some(b), _, Some(h)) => ui.say(format!("On branch {} at {}", ui.branch(b), ui.key(&short(&h)))),
        (Some(b), _, None) => ui.say(format!("On branch {} (no commits yet)", ui.branch(b))),
        (None, _, _) => ui.say("No commits yet"),
    }
    // Remote branches of the same name.
    let mut remotes = Vec::new();
    if let (Some(name), Some(h), false) = (&branch_name, head, state.detached) {
        for (remote, heads) in s.wd.all_remote_heads()? {
            let Some(theirs) = heads.heads(name) else { continue };
            let repo = sr.repository();
            let standing = if theirs == [h] {
                "up to date".to_owned()
            } else if theirs.iter().all(|t| repo.commit_info(*t).is_ok() && repo.is_ancestor(*t, h)) {
                "ahead: push to publish your commits".to_owned()
            } else if theirs.iter().all(|t| repo.commit_info(*t).is_ok() && repo.is_ancestor(h, *t)) {
                "behind: pull to catch up".to_owned()
            } else {
                "diverged: pull to merge".to_owned()
            };
            ui.say(format!("  {}/{name}: {standing}", remote));
            remotes.push(json!({ "remote": remote, "branch": name, "standing": standing }));
        }
    }
    out["remotes"] = json!(remotes);
    if let Some(m) = &state.merge {
        ui.say(format!("Merging {} ({}):", ui.branch(&m.name), ui.key(&m.theirs[..12])));
        out["merge"] = json!({ "name": m.name, "theirs": m.theirs, "policy": m.policy });
    }
    let doc = s.wd.read_document()?;
    let markers = doc.as_ref().map(json::conflicts).unwrap_or_default();
    if !markers.is_empty() {
        ui.out(format!("{} unresolved conflict(s) in {DOCUMENT}:", markers.len()));
        for (path, _) in &markers {
            ui.out(format!("  {} {path}", ui.red("conflict:")));
        }
        ui.say("Replace each {\"@conflict\": …} with the value to keep, then `dsf-cli merge --continue`.");
        out["conflicts"] = json!(markers.iter().map(|(p, m)| json!({"path": p, "marker": m})).collect::<Vec<_>>());
        out["clean"] = json!(false);
        ui.emit(out);
        return Ok(exit::OK);
    }
    out["conflicts"] = json!([]);
    if state.merge.is_some() {
        ui.say("Every conflict is resolved: `dsf-cli merge --continue` commits the merge.");
    }
    match working_changes(&s, &mut sr, head, doc).await? {
        None if head.is_none() => {
            ui.say(format!("No {DOCUMENT} yet: `dsf-cli import FILE` writes one."));
            out["clean"] = json!(true);
            out["changes"] = json!([]);
        }
        None => {
            ui.out(format!("{DOCUMENT} is missing: `dsf-cli checkout --force` restores it."));
            out["clean"] = json!(false);
            out["changes"] = json!([{"path": "root", "kind": "removed"}]);
        }
        Some((_, changes)) if changes.is_empty() => {
            ui.say(format!("Nothing to commit: {DOCUMENT} matches the commit."));
            out["clean"] = json!(true);
            out["changes"] = json!([]);
        }
        Some((_, changes)) => {
            ui.say(format!("Changes in {DOCUMENT} (commit them with `dsf-cli commit -m MESSAGE`):"));
            print_changes(&ui, &changes);
            out["clean"] = json!(false);
            out["changes"] = json!(changes.iter().map(change_json).collect::<Vec<_>>());
        }
    }
    ui.emit(out);
    Ok(exit::OK)
}

pub async fn diff(base: &Path, from: Option<String>, to: Option<String>, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    let mut sr = s.repo().await?;
    let head = s.load_current(&mut sr).await?;
    let from_commit = match &from {
        Some(f) => s.resolve(sr.repository(), f)?,
        None => head.ok_or_else(|| fail("nothing is committed yet: there is nothing to compare with"))?,
    };
    let to_commit = to.as_deref().map(|t| s.resolve(sr.repository(), t)).transpose()?;
    let mut commits = vec![from_commit];
    commits.extend(to_commit);
    s.load_commits(&mut sr, &commits).await?;
    let from_root = Session::root_of(sr.repository(), from_commit)?;
    let to_root = match to_commit {
        Some(c) => Session::root_of(sr.repository(), c)?,
        None => {
            let doc = s.wd.read_document()?.ok_or_else(|| fail(format!("there is no {DOCUMENT} to compare")))?;
            let parsed = s.parse(&mut sr, doc).await?;
            sr.repository_mut().add_elements(parsed.new_elements)?;
            parsed.root
        }
    };
    let changes = dsf::merge::diff_graphs(&s.registry, sr.repository().elements(), from_root, to_root)?;
    print_changes(&ui, &changes);
    ui.emit(json!({
        "from": from_commit.to_hex(),
        "to": to_commit.map_or_else(|| json!(DOCUMENT), |c| json!(c.to_hex())),
        "changes": changes.iter().map(change_json).collect::<Vec<_>>(),
    }));
    Ok(exit::OK)
}
