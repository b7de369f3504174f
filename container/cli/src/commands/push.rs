//! `push`: the branches to a remote, reading only what changed since its heads.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;
use dsf::store::BlobStore;
use dsf::sync::{PushWalk, new_commits};
use dsf::{Element, Key};

use super::sync::*;
use crate::remote::Target;
use crate::session::{Session, Stored};
use crate::ui::{Progress, Ui, exit, fail};
use crate::workdir::RemoteHeads;

/// Reads from the local store what a push sends and loads it into the repository: the objects
/// [`PushWalk`] finds below the roots of `new` beside the roots of `known` (the commits the
/// remote holds), level by level, so only what changed is read. The commits themselves are
/// loaded already.
async fn load_delta(
    s: &Session,
    sr: &mut Stored<'_>,
    new: &[Key],
    known: &[Key],
    progress: &mut Progress,
) -> Result<()> {
    let repo = sr.repository();
    let root_of = |k: &Key| repo.commit_info(*k).ok().and_then(|c| c.root.as_ref().map(|r| r.key));
    let mut walk = PushWalk::new(new.iter().filter_map(root_of), known.iter().filter_map(root_of));
    let mut delta: Vec<Element> = Vec::new();
    while !walk.done() {
        let wanted = walk.wanted();
        let rows = s.store.get_blobs(wanted.clone()).await?;
        let mut found: HashMap<Key, Element> = HashMap::new();
        for (key, row) in wanted.iter().zip(rows) {
            let Some(row) = row else { continue };
            let e = Element::from_stored(&row.element, &row.children)?;
            if e.key() != *key {
                return Err(dsf::Error::Corrupt { key: *key }.into());
            }
            found.insert(*key, e);
        }
        let level = walk.step(|k| found.get(k).cloned());
        progress.add_sized(level.len() as u64, level.iter().map(|e| e.encoded_len() as u64).sum());
        delta.extend(level);
    }
    sr.repository_mut().add_elements(delta)?;
    Ok(())
}

/// Sends the branches to a remote: asks what it holds, then reads from the local store only
/// what the new commits add to what it holds (never the whole history).
pub async fn push(base: &Path, remote: Option<String>, diverge: bool, opts: SyncOptions, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    let (name, target) = remote_of(&s.wd, remote)?;
    if let Target::Local { path } = &target
        && path.ends_with(Path::new(crate::workdir::DOT).join("store"))
    {
        return Err(fail(format!(
            "{name} is another working copy: a push would move its branches under its root.json"
        ))
        .hint("push to a store folder (any new folder will do), or pull from this copy over there")
        .into());
    }
    let mut sr = s.repo().await?;
    if sr.repository().commits().next().is_none() {
        return Err(fail("nothing to push: there are no commits").hint("`dsf-cli commit -m MESSAGE` first").into());
    }
    let remote = connect(&ui, &name, &target, &s.registry, opts).await?;
    let result = async {
        let (known, new) = {
            let repo = sr.repository();
            let held = remote.fetch(repo, false).await?;
            if let Some((state, _)) = &held {
                for b in &state.branches {
                    let Some(local) = repo.get_branch(&b.key) else { continue };
                    let behind: Vec<&Key> = b
                        .heads
                        .iter()
                        .filter(|h| repo.commit_info(**h).is_err() || !repo.ancestry(&local.heads).contains(h))
                        .collect();
                    if !behind.is_empty() && !diverge {
                        let bname = s.branch_name(repo, &b.key);
                        return Err(fail(format!("{name}/{bname} has commits that are not here"))
                            .hint(
                                "`dsf-cli pull` merges them first (or `push --diverge` lets the datastore keep both heads)",
                            )
                            .into());
                    }
                }
            }
            let known: Vec<Key> = held
                .iter()
                .flat_map(|(state, _)| state.branches.iter().flat_map(|b| b.heads.iter().copied()))
                .filter(|k| repo.commit_info(*k).is_ok())
                .collect();
            let heads: Vec<Key> = repo.branches().iter().flat_map(|b| b.heads.iter().copied()).collect();
            let new = new_commits(&heads, &known, |k| repo.commit_info(*k).ok().map(|c| c.parent_keys().collect()));
            (known, new)
        };
        remote.assume_heads(sr.repository().key(), known.clone());
        let mut progress = ui.progress(&format!("pushing to {name}"), None);
        load_delta(&s, &mut sr, &new, &known, &mut progress).await?;
        let state = remote.push(sr.repository()).await?;
        progress.finish();
        anyhow::Ok(state)
    }
    .await;
    remote.close().await;
    let state = result?;
    let heads = RemoteHeads::from_branches(&state.branches, &state.nicknames);
    s.wd.save_remote_heads(&name, &heads)?;
    report_heads(&ui, &name, &heads);
    Ok(exit::OK)
}
