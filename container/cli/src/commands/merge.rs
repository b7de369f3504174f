//! `merge`, `merge --continue` and `merge --abort`.

use std::path::Path;

use anyhow::{Context, Result};
use dsf::json;
use dsf::{Key, MergeOutcome, MergePolicy};
use serde_json::{Value as Json, json};

use super::*;
use crate::session::{Session, Stored};
use crate::ui::{Ui, exit, fail};
use crate::workdir::{DOCUMENT, MergeState};

/// Merges `name` into the current branch: fast-forward, a clean merge committed at once, or
/// conflicts written into the document (exit code 3).
pub async fn merge(s: &Session, name: &str, policy: MergePolicy, message: Option<String>, ui: Ui) -> Result<i32> {
    let mut sr = s.repo().await?;
    let head = s.load_current(&mut sr).await?;
    s.require_clean(&mut sr, head, "merge").await?;
    if s.state().detached {
        return Err(fail("a detached checkout cannot merge").hint("`dsf-cli checkout -b NAME` first").into());
    }
    let ours = head.ok_or_else(|| fail("the current branch has no commits to merge into"))?;
    let theirs = s.resolve(sr.repository(), name)?;
    let (code, doc) = merge_commits(s, &mut sr, name, ours, theirs, policy, message, ui).await?;
    ui.emit(doc);
    Ok(code)
}

#[allow(clippy::too_many_arguments)]
pub async fn merge_commits(
    s: &Session,
    sr: &mut Stored<'_>,
    name: &str,
    ours: Key,
    theirs: Key,
    policy: MergePolicy,
    message: Option<String>,
    ui: Ui,
) -> Result<(i32, Json)> {
    let base = sr.repository().common_ancestor(&[ours, theirs]).ok();
    if base.is_none() && !s.state().shallow.is_empty() {
        return Err(s.beyond_shallow(&format!("merge {name}"), "no common ancestor here"));
    }
    let mut commits = vec![ours, theirs];
    commits.extend(base);
    s.load_commits(sr, &commits).await?;
    let branch = s.branch_name(sr.repository(), s.state().branch.as_deref().unwrap_or_default());
    let outcome = sr.repository_mut().merge_commit(theirs, policy)?;
    match outcome {
        MergeOutcome::UpToDate => {
            ui.say(format!("Already up to date with {name}."));
            Ok((exit::OK, json!({ "outcome": "up-to-date", "commit": ours.to_hex() })))
        }
        MergeOutcome::FastForward(k) => {
            sr.save().await?;
            s.write_checkout(sr.repository(), k)?;
            ui.say(format!("Fast-forward {} to {}", ui.branch(&branch), ui.key(&short(&k))));
            Ok((exit::OK, json!({ "outcome": "fast-forward", "commit": k.to_hex() })))
        }
        MergeOutcome::Merged { conflicts } if conflicts.is_empty() || policy != MergePolicy::Manual => {
            let msg = message.unwrap_or_else(|| format!("Merge {name} into {branch}"));
            let key = sr.repository_mut().commit(&msg)?;
            sr.save().await?;
            s.write_checkout(sr.repository(), key)?;
            ui.say(format!("Merged {name} into {}: {}", ui.branch(&branch), ui.key(&short(&key))));
            for c in &conflicts {
                ui.say(format!("  {} {} (policy {policy:?} kept {:?})", ui.key("settled:"), c.path, c.taken));
            }
            Ok((
                exit::OK,
                json!({
                    "outcome": "merged", "commit": key.to_hex(),
                    "settled": conflicts.iter().map(|c| json!({"path": c.path, "taken": format!("{:?}", c.taken).to_lowercase()})).collect::<Vec<_>>(),
                }),
            ))
        }
        MergeOutcome::Merged { conflicts } => {
            let repo = sr.repository();
            let merged =
                repo.root().and_then(|id| repo.object_key(id).ok().flatten()).context("the merge has no root")?;
            let mut doc = s.render(repo, merged)?;
            let ours_doc = s.render(repo, Session::root_of(repo, ours)?)?;
            let theirs_doc = s.render(repo, Session::root_of(repo, theirs)?)?;
            let base_doc = base.map(|b| s.render(repo, Session::root_of(repo, b)?)).transpose()?;
            let unplaced = json::mark_conflicts(&mut doc, base_doc.as_ref(), &ours_doc, &theirs_doc, &conflicts);
            s.wd.write_document(Some(&doc))?;
            s.state_mut().merge = Some(MergeState {
                theirs: theirs.to_hex(),
                name: name.to_owned(),
                policy: "manual".into(),
                conflicts: conflicts.iter().map(|c| c.path.clone()).collect(),
            });
            s.save_state()?;
            ui.out(format!(
                "Merging {name} into {}: {} conflict(s), written into {DOCUMENT}:",
                ui.branch(&branch),
                conflicts.len()
            ));
            for c in &conflicts {
                ui.out(format!(
                    "  {} {}: ours {} / theirs {}",
                    ui.red("conflict:"),
                    c.path,
                    c.ours.as_deref().unwrap_or("(absent)"),
                    c.theirs.as_deref().unwrap_or("(absent)")
                ));
            }
            for p in &unplaced {
                ui.out(format!("  (the conflict at {p} lies below a shared object and kept our value)"));
            }
            ui.say(
                "Replace each {\"@conflict\": …} with the value to keep, then `dsf-cli merge --continue` (or --abort).",
            );
            Ok((
                exit::CONFLICT,
                json!({
                    "outcome": "conflicts",
                    "conflicts": conflicts.iter().map(|c| json!({"path": c.path, "base": c.base, "ours": c.ours, "theirs": c.theirs})).collect::<Vec<_>>(),
                }),
            ))
        }
    }
}

pub async fn merge_continue(base: &Path, message: Option<String>, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    let m = s.state().merge.clone().ok_or_else(|| fail("no merge is in progress"))?;
    let doc = s.wd.read_document()?.ok_or_else(|| fail(format!("{DOCUMENT} is missing")))?;
    let left = json::conflicts(&doc);
    if !left.is_empty() {
        let paths: Vec<&str> = left.iter().map(|(p, _)| p.as_str()).collect();
        return Err(fail(format!("{} conflict(s) are still unresolved: {}", left.len(), paths.join(", ")))
            .code(exit::CONFLICT)
            .hint(format!("replace each {{\"@conflict\": …}} in {DOCUMENT} with the value to keep"))
            .into());
    }
    let theirs = Key::from_hex(&m.theirs).context("the merge state names no commit")?;
    let mut sr = s.repo().await?;
    let ours = s.load_current(&mut sr).await?.context("the branch has no commits")?;
    let base_commit = sr.repository().common_ancestor(&[ours, theirs]).ok();
    let mut commits = vec![ours, theirs];
    commits.extend(base_commit);
    s.load_commits(&mut sr, &commits).await?;
    sr.repository_mut().merge_commit(theirs, parse_policy(&m.policy)?)?;
    sr.repository_mut().mark_resolved();
    let parsed = s.parse(&mut sr, doc).await?;
    let branch = s.branch_name(sr.repository(), s.state().branch.as_deref().unwrap_or_default());
    let msg = message.unwrap_or_else(|| format!("Merge {} into {branch}", m.name));
    let key = record(&s, &mut sr, parsed, &msg).await?;
    ui.say(format!("Merged {} into {}: {}", m.name, ui.branch(&branch), ui.key(&short(&key))));
    ui.emit(json!({ "outcome": "merged", "commit": key.to_hex() }));
    Ok(exit::OK)
}

pub async fn merge_abort(base: &Path, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    let m = s.state().merge.clone().ok_or_else(|| fail("no merge is in progress"))?;
    let mut sr = s.repo().await?;
    let head = s.load_current(&mut sr).await?.context("the branch has no commits")?;
    s.state_mut().merge = None;
    s.write_checkout(sr.repository(), head)?;
    ui.say(format!("Abandoned the merge of {}; {DOCUMENT} is back at {}", m.name, ui.key(&short(&head))));
    ui.emit(json!({ "aborted": m.name, "commit": head.to_hex() }));
    Ok(exit::OK)
}
