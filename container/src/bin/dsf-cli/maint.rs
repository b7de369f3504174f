//! Maintenance of the local store: `fsck` and `gc`.

use std::collections::HashSet;
use std::path::Path;

use anyhow::Result;
use dsf::store::maint::{all_blobs, all_repositories, all_rows};
use dsf::store::{BlobStore, KvStore, Maintenance};
use dsf::{Commit, Element, Key, TypeId};
use serde_json::json;

use crate::session::Session;
use crate::ui::{Ui, exit, fail};

const BATCH: usize = 2048;

/// One problem fsck found.
struct Problem {
    key: Key,
    what: String,
}

/// Verifies every blob (its key over its bytes, its child list against its links), every
/// commit row, every head, and that every link and parent leads to a stored element.
pub async fn fsck(base: &Path, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    let blob_keys: Vec<Key> = all_blobs(&s.store).await?.into_iter().map(|l| l.key).collect();
    let row_keys: Vec<Key> = all_rows(&s.store).await?.iter().filter_map(|l| Key::from_slice(&l.key)).collect();
    let mut progress = ui.progress("checking", Some((blob_keys.len() + row_keys.len()) as u64));
    let mut problems: Vec<Problem> = Vec::new();
    // (referenced key, by whom)
    let mut referenced: Vec<(Key, Key)> = Vec::new();
    for chunk in blob_keys.chunks(BATCH) {
        let rows = s.store.get_blobs(chunk.to_vec()).await?;
        for (key, row) in chunk.iter().zip(rows) {
            let Some(row) = row else { continue };
            match Element::from_stored(&row.element, &row.children) {
                Err(e) => problems.push(Problem { key: *key, what: format!("corrupt: {e}") }),
                Ok(e) if e.key() != *key => problems
                    .push(Problem { key: *key, what: format!("stored under the wrong key (its key is {})", e.key()) }),
                Ok(e) => {
                    if s.registry.get(e.ty()).is_some() {
                        match e.links(&s.registry) {
                            Ok(links) => {
                                let mut seen = HashSet::new();
                                let distinct: Vec<Key> =
                                    links.into_iter().map(|(k, _)| k).filter(|k| seen.insert(*k)).collect();
                                if distinct != e.children() {
                                    problems.push(Problem {
                                        key: *key,
                                        what: "its stored child keys disagree with its links".into(),
                                    });
                                }
                            }
                            Err(err) => {
                                problems.push(Problem { key: *key, what: format!("its links do not decode: {err}") })
                            }
                        }
                    }
                    referenced.extend(e.children().iter().map(|c| (*c, *key)));
                }
            }
        }
        progress.add(chunk.len() as u64);
    }
    let mut commits = 0;
    for chunk in row_keys.chunks(BATCH) {
        let values = s.store.batch_get(chunk.iter().map(|k| k.as_bytes().to_vec()).collect()).await?;
        for (key, value) in chunk.iter().zip(values) {
            let Some(value) = value else { continue };
            match Element::decode(&s.registry, &value) {
                Err(e) => problems.push(Problem { key: *key, what: format!("corrupt commit: {e}") }),
                Ok(e) if e.key() != *key => problems
                    .push(Problem { key: *key, what: format!("commit stored under the wrong key ({})", e.key()) }),
                Ok(e) if e.ty() == TypeId::COMMIT => match Commit::from_element(&e) {
                    Ok(c) => {
                        commits += 1;
                        referenced.extend(c.parent_keys().map(|p| (p, *key)));
                        referenced.extend(c.root.iter().map(|r| (r.key, *key)));
                    }
                    Err(err) => problems.push(Problem { key: *key, what: format!("not a valid commit: {err}") }),
                },
                Ok(_) => {}
            }
        }
        progress.add(chunk.len() as u64);
    }
    progress.finish();
    let blobs: HashSet<Key> = blob_keys.iter().copied().collect();
    let rows: HashSet<Key> = row_keys.iter().copied().collect();
    let mut reported: HashSet<Key> = HashSet::new();
    for (k, by) in &referenced {
        if !blobs.contains(k) && !rows.contains(k) && reported.insert(*k) {
            problems.push(Problem { key: *k, what: format!("missing (referenced by {by})") });
        }
    }
    let mut heads = 0;
    for repo in all_repositories(&s.store).await? {
        if let Some(h) = dsf::store::persist::read_heads(&s.store, &repo).await? {
            for k in h.branches.iter().flat_map(|b| b.heads.iter()) {
                heads += 1;
                if !rows.contains(k) {
                    problems
                        .push(Problem { key: *k, what: format!("head of repository {repo} is not a stored commit") });
                }
            }
        }
    }
    for p in &problems {
        ui.out(format!("{} {}: {}", ui.red("error:"), ui.key(&p.key.to_hex()), p.what));
    }
    ui.say(format!(
        "Checked {} objects, {commits} commits and {heads} heads: {}",
        blob_keys.len(),
        if problems.is_empty() { ui.green("no problems") } else { ui.red(&format!("{} problem(s)", problems.len())) }
    ));
    ui.emit(json!({
        "objects": blob_keys.len(), "commits": commits, "heads": heads, "ok": problems.is_empty(),
        "problems": problems.iter().map(|p| json!({"key": p.key.to_hex(), "problem": p.what})).collect::<Vec<_>>(),
    }));
    Ok(if problems.is_empty() { exit::OK } else { exit::CORRUPT })
}

/// Deletes blobs and commit rows that nothing reaches: not the branches of any repository in
/// the store, not a remote's branches as last seen, not the checkout, not a merge in progress.
pub async fn gc(base: &Path, dry_run: bool, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    let mut starts: Vec<Key> = Vec::new();
    for repo in all_repositories(&s.store).await? {
        if let Some(h) = dsf::store::persist::read_heads(&s.store, &repo).await? {
            starts.extend(h.branches.iter().flat_map(|b| b.heads.iter().copied()));
        }
    }
    for (_, heads) in s.wd.all_remote_heads()? {
        starts.extend(heads.all());
    }
    starts.extend(s.state().commit.as_deref().and_then(Key::from_hex));
    starts.extend(s.state().merge.as_ref().and_then(|m| Key::from_hex(&m.theirs)));
    // Commits, through their parents (a commit that is not stored ends the walk there).
    let mut commits: HashSet<Key> = HashSet::new();
    let mut roots: Vec<Key> = Vec::new();
    let mut frontier: Vec<Key> = starts.into_iter().filter(|k| commits.insert(*k)).collect();
    while !frontier.is_empty() {
        let values = s.store.batch_get(frontier.iter().map(|k| k.as_bytes().to_vec()).collect()).await?;
        let mut next = Vec::new();
        for (key, value) in frontier.iter().zip(values) {
            let Some(value) = value else { continue };
            let e = Element::decode(&s.registry, &value).map_err(|e| {
                fail(format!("cannot collect garbage: commit {key} is unreadable: {e}")).hint("run `dsf-cli fsck`")
            })?;
            let c = Commit::from_element(&e)?;
            roots.extend(c.root.iter().map(|r| r.key));
            next.extend(c.parent_keys().filter(|p| commits.insert(*p)));
        }
        frontier = next;
    }
    // Objects, through the stored child keys.
    let mut reachable: HashSet<Key> = HashSet::new();
    let mut frontier: Vec<Key> = roots.into_iter().filter(|k| reachable.insert(*k)).collect();
    while !frontier.is_empty() {
        let rows = s.store.get_blobs(frontier.clone()).await?;
        let mut next = Vec::new();
        for (key, row) in frontier.iter().zip(rows) {
            let Some(row) = row else {
                return Err(fail(format!("cannot collect garbage: reachable object {key} is missing"))
                    .hint("run `dsf-cli fsck`; `dsf-cli fetch` may bring it back")
                    .into());
            };
            let children = dsf::element::decode_children(&row.children)?;
            next.extend(children.into_iter().filter(|c| reachable.insert(*c)));
        }
        frontier = next;
    }
    let blob_keys: Vec<Key> = all_blobs(&s.store).await?.into_iter().map(|l| l.key).collect();
    let garbage: Vec<Key> = blob_keys.iter().copied().filter(|k| !reachable.contains(k)).collect();
    let row_keys: Vec<Key> = all_rows(&s.store).await?.iter().filter_map(|l| Key::from_slice(&l.key)).collect();
    let dead_commits: Vec<Key> = row_keys.iter().copied().filter(|k| !commits.contains(k)).collect();
    if !dry_run {
        let mut progress = ui.progress("deleting", Some((garbage.len() + dead_commits.len()) as u64));
        for chunk in garbage.chunks(BATCH) {
            s.store.delete_blobs(chunk.to_vec(), None).await?;
            progress.add(chunk.len() as u64);
        }
        for chunk in dead_commits.chunks(BATCH) {
            s.store.delete_rows(chunk.iter().map(|k| k.as_bytes().to_vec()).collect(), None).await?;
            progress.add(chunk.len() as u64);
        }
        progress.finish();
    }
    let verb = if dry_run { "Would remove" } else { "Removed" };
    ui.say(format!(
        "{verb} {} unreachable object(s) and {} commit(s); kept {} object(s) and {} commit(s)",
        garbage.len(),
        dead_commits.len(),
        blob_keys.len() - garbage.len(),
        row_keys.len() - dead_commits.len()
    ));
    ui.emit(json!({
        "dry_run": dry_run,
        "removed_objects": garbage.iter().map(Key::to_hex).collect::<Vec<_>>(),
        "removed_commits": dead_commits.iter().map(Key::to_hex).collect::<Vec<_>>(),
        "kept_objects": blob_keys.len() - garbage.len(),
        "kept_commits": row_keys.len() - dead_commits.len(),
    }));
    Ok(exit::OK)
}
