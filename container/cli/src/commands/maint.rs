//! Maintenance of the local store: `fsck` and `gc`.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use dsf::store::maint::{all_blobs, all_repositories, all_rows};
use dsf::store::walk::{self, GcOptions, Progress as Step, WalkError};
use dsf::store::{BlobStore, KvStore};
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
    let shallow: HashSet<Key> = s.state().shallow.iter().filter_map(|k| Key::from_hex(k)).collect();
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
                        // A shallow copy lacks the parents of its boundary on purpose.
                        if !shallow.contains(key) {
                            referenced.extend(c.parent_keys().map(|p| (p, *key)));
                        }
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
    // The repositories' heads are walked by gc itself; these are what the working copy keeps.
    let mut keep: Vec<Key> = Vec::new();
    for (_, heads) in s.wd.all_remote_heads()? {
        keep.extend(heads.all());
    }
    keep.extend(s.state().commit.as_deref().and_then(Key::from_hex));
    keep.extend(s.state().merge.as_ref().and_then(|m| Key::from_hex(&m.theirs)));
    // The local store has no write times and no other writer: no grace, no pause.
    let options = GcOptions { now: 0, grace: Duration::ZERO, pause: Duration::ZERO, dry_run };
    let mut progress = ui.progress("deleting", None);
    let mut shown = 0;
    let report = walk::gc(
        &s.store,
        &s.registry,
        options,
        keep,
        |_| std::future::ready(()),
        |p| {
            if let Step::Deleted(n) = p {
                progress.add(n.saturating_sub(shown) as u64);
                shown = n;
            }
        },
    )
    .await;
    progress.finish();
    let report = match report {
        Ok(r) => r,
        Err(WalkError::Damaged(problems)) => {
            return Err(fail(format!("cannot collect garbage: {} (and {} more)", problems[0], problems.len() - 1))
                .hint("run `dsf-cli fsck`; `dsf-cli fetch` may bring missing objects back")
                .into());
        }
        Err(WalkError::Store(e)) => return Err(e.into()),
    };
    let objects = report.listed_blobs - report.removed_objects.len();
    let rows: usize = all_rows(&s.store).await?.iter().filter(|l| Key::from_slice(&l.key).is_some()).count();
    let commits = if dry_run { rows - report.removed_commits.len() } else { rows };
    let verb = if dry_run { "Would remove" } else { "Removed" };
    ui.say(format!(
        "{verb} {} unreachable object(s) and {} commit(s); kept {objects} object(s) and {commits} commit(s)",
        report.removed_objects.len(),
        report.removed_commits.len(),
    ));
    ui.emit(json!({
        "dry_run": dry_run,
        "removed_objects": report.removed_objects.iter().map(Key::to_hex).collect::<Vec<_>>(),
        "removed_commits": report.removed_commits.iter().map(Key::to_hex).collect::<Vec<_>>(),
        "kept_objects": objects,
        "kept_commits": commits,
    }));
    Ok(exit::OK)
}
