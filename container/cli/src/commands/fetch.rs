//! `fetch` and `pull`: what a remote has, into the local store (and merged, for `pull`).

use std::path::Path;

use anyhow::{Context, Result};
use dsf::{Key, MergePolicy, Repository, TypeId};
use serde_json::json;

use super::sync::*;
use crate::remote::{RemoteState, Target};
use crate::session::Session;
use crate::ui::{Ui, exit, fail};
use crate::workdir::RemoteHeads;

/// Fetches from a remote into the local store; branches here do not move. Returns what the
/// remote holds (`None`: the remote has no such repository). Only the commits are exchanged
/// first; then the content of the new commits that the local store lacks comes level by level,
/// so nothing of the local history is loaded beyond its commits.
async fn fetch_into(
    s: &Session,
    name: &str,
    target: &Target,
    opts: SyncOptions,
    ui: &Ui,
) -> Result<Option<RemoteState>> {
    let mut sr = s.repo().await?;
    let remote = connect(ui, name, target, &s.registry, opts).await?;
    remote.assume_heads(sr.repository().key(), s.wd.remote_heads(name)?.all());
    let mut progress = ui.progress(&format!("fetching from {name}"), None);
    let fetched = async {
        let boundary = s.state().shallow.clone();
        // Deepening: the remote is told of no commit, so it sends every commit row (no
        // content) and the boundary moves by the generations asked for; a remote sends
        // nothing below a commit the asker names, and a shallow copy cannot name its boundary
        // in the pull request.
        let deepening = !boundary.is_empty() && (opts.deepen.is_some() || opts.unshallow);
        let asked = if deepening {
            let repo = sr.repository();
            remote.fetch(&Repository::with_key(repo.registry().clone(), repo.key(), repo.algorithm()), false).await?
        } else {
            remote.fetch(sr.repository(), false).await?
        };
        let Some((state, mut elements)) = asked else {
            return anyhow::Ok(None);
        };
        if !boundary.is_empty() {
            let keep = shallow_keep(sr.repository(), &elements, &boundary, opts)?;
            elements.retain(|e| e.ty() != TypeId::COMMIT || keep.contains(&e.key()));
        }
        progress.add_sized(elements.len() as u64, elements.iter().map(|e| e.encoded_len() as u64).sum());
        progress.finish();
        let mut count = elements.len();
        let new: Vec<Key> = elements.iter().filter(|e| e.ty() == TypeId::COMMIT).map(|e| e.key()).collect();
        sr.repository_mut().add_elements(elements)?;
        let repo = sr.repository();
        let root_of = |k: &Key| repo.commit_info(*k).ok().and_then(|c| c.root.as_ref().map(|r| r.key));
        let mut roots: Vec<Key> = new.iter().filter_map(root_of).collect();
        // --all-types: whatever the branches reach and is not here comes too (a copy made
        // without some types becomes complete); this reads the heads' graphs here.
        let widen = opts.all_types;
        if widen {
            roots.extend(repo.branches().iter().flat_map(|b| b.heads.iter()).filter_map(root_of));
        }
        let excluded = if opts.all_types { Vec::new() } else { s.excluded()? };
        count += complete_from(Some(&s.store), sr.repository_mut(), &remote, roots, &excluded, widen, ui).await?;
        anyhow::Ok(Some((state, count)))
    }
    .await;
    remote.close().await;
    let Some((state, count)) = fetched? else { return Ok(None) };
    sr.save().await?;
    let boundary = shallow_boundary(sr.repository());
    // --all-types completed what the branches reach: the copy no longer leaves types out (the
    // next checkout writes them in the document).
    let widened = opts.all_types && !s.state().excluded.is_empty();
    if boundary != s.state().shallow || widened {
        s.state_mut().shallow = boundary;
        if widened {
            s.state_mut().excluded.clear();
        }
        s.save_state()?;
    }
    s.wd.save_remote_heads(name, &RemoteHeads::from_branches(&state.branches, &state.nicknames))?;
    ui.say(format!("Fetched {count} element(s) from {name}"));
    Ok(Some(state))
}

pub async fn fetch(base: &Path, remote: Option<String>, opts: SyncOptions, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    let (name, target) = remote_of(&s.wd, remote)?;
    let state = fetch_into(&s, &name, &target, opts, &ui).await?.ok_or_else(|| no_repository(&s, &name))?;
    report_heads(&ui, &name, &RemoteHeads::from_branches(&state.branches, &state.nicknames));
    Ok(exit::OK)
}

pub async fn pull(base: &Path, remote: Option<String>, policy: MergePolicy, opts: SyncOptions, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    let (name, target) = remote_of(&s.wd, remote)?;
    let branch_key = s.state().branch.clone().ok_or_else(|| fail("nothing is committed here yet: clone instead"))?;
    {
        let mut sr = s.repo().await?;
        let head = s.load_current(&mut sr).await?;
        s.require_clean(&mut sr, head, "pull").await?;
    }
    let state = fetch_into(&s, &name, &target, opts, &ui).await?.ok_or_else(|| no_repository(&s, &name))?;
    let heads = RemoteHeads::from_branches(&state.branches, &state.nicknames);
    let branch = {
        let sr = s.repo().await?;
        s.branch_name(sr.repository(), &branch_key)
    };
    let theirs = heads.heads(&branch).or_else(|| heads.heads(&branch_key)).unwrap_or_default();
    if theirs.is_empty() {
        ui.say(format!("{name} has no branch {branch}: nothing to merge"));
        ui.emit(json!({ "outcome": "up-to-date" }));
        return Ok(exit::OK);
    }
    let mut code = exit::OK;
    let mut merges = Vec::new();
    for (i, t) in theirs.iter().enumerate() {
        let label = if theirs.len() == 1 { format!("{name}/{branch}") } else { t.to_hex() };
        let mut sr = s.repo().await?;
        let ours = s.load_current(&mut sr).await?.context("the branch has no commits")?;
        let (c, doc) = crate::commands::merge_commits(&s, &mut sr, &label, ours, *t, policy, None, ui).await?;
        code = c;
        merges.push(doc);
        if code != exit::OK {
            if i + 1 < theirs.len() {
                ui.say(format!(
                    "{name}/{branch} has {} more head(s): pull again after this merge",
                    theirs.len() - i - 1
                ));
            }
            break;
        }
    }
    // One document: the weightiest outcome (conflicts, merged, fast-forward, up-to-date), the
    // commit the branch is at, and every merge.
    let rank = |d: &serde_json::Value| match d["outcome"].as_str() {
        Some("conflicts") => 3,
        Some("merged") => 2,
        Some("fast-forward") => 1,
        _ => 0,
    };
    let mut doc = merges.iter().max_by_key(|d| rank(d)).cloned().unwrap_or_else(|| json!({}));
    if let Some(last) = merges.last() {
        doc["commit"] = last["commit"].clone();
    }
    doc["remote"] = json!(name);
    doc["branch"] = json!(branch);
    doc["merges"] = json!(merges);
    ui.emit(doc);
    Ok(code)
}
