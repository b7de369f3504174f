//! What clone, fetch, pull and push share: the remote a command names, connecting with the
//! options (`--timeout`, `--all-types`, shallow depths), completing history level by level,
//! and the shallow boundary.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use dsf::store::BlobStore;
use dsf::sync::{new_commits, within_depth};
use dsf::{Element, Key, Registry, Repository, TypeId};
use dsf_store_backends::rocks::RocksStore;
use serde_json::json;

use crate::remote::{Remote, Target};
use crate::session::Session;
use crate::ui::{Ui, exit, fail};
use crate::workdir::{RemoteHeads, Workdir};

/// A local path made absolute (relative to `base`), so the remote works from anywhere; other
/// URLs as given, once they parse.
pub(crate) fn absolute_url(base: &Path, url: &str) -> Result<String> {
    Ok(match Target::parse(url)? {
        Target::Local { .. } => {
            let path = base.join(url.strip_prefix("file:").unwrap_or(url));
            std::fs::canonicalize(&path)
                .or_else(|_| std::path::absolute(&path))
                .with_context(|| format!("bad path {}", path.display()))?
                .to_string_lossy()
                .into_owned()
        }
        _ => url.to_owned(),
    })
}

pub(crate) fn unknown_remote(wd: &Workdir, name: &str) -> crate::ui::Failure {
    let known: Vec<&str> = wd.config.remotes.keys().map(String::as_str).collect();
    fail(format!("there is no remote {name:?}")).hint(if known.is_empty() {
        "add one with `dsf-cli remote add NAME URL`".to_owned()
    } else {
        format!("known remotes: {}", known.join(", "))
    })
}

/// The remote a command names (default `origin`).
pub(crate) fn remote_of(wd: &Workdir, name: Option<String>) -> Result<(String, Target)> {
    let name = name.unwrap_or_else(|| "origin".into());
    let r = wd.config.remotes.get(&name).ok_or_else(|| unknown_remote(wd, &name))?;
    Ok((name, Target::parse(&r.url)?))
}

/// What the commands that talk to a remote take besides the remote.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncOptions {
    /// How long a remote may stay silent before the command gives up (default: the client's).
    pub timeout: Option<Duration>,
    /// Take objects of every type (by default the clients leave out `ArrayStructure`, as ION
    /// did).
    pub all_types: bool,
    /// `clone --depth N`: keep the commits within N generations of the heads.
    pub depth: Option<usize>,
    /// `fetch --deepen N`: also bring N more generations beyond the shallow boundary.
    pub deepen: Option<usize>,
    /// `fetch --unshallow`: bring the whole history.
    pub unshallow: bool,
}

pub(crate) fn parents_in(repo: &Repository) -> impl FnMut(&Key) -> Option<Vec<Key>> + '_ {
    |k| repo.commit_info(*k).ok().map(|c| c.parent_keys().collect())
}

/// The shallow boundary of a repository: its commits whose parents are not all here.
pub fn shallow_boundary(repo: &Repository) -> Vec<String> {
    let mut boundary: Vec<String> = repo
        .commits()
        .filter(|c| c.parent_keys().any(|p| repo.commit_info(p).is_err()))
        .map(|c| c.key.to_hex())
        .collect();
    boundary.sort();
    boundary
}

/// The repository with only the commits of `keep` (and every object).
pub(crate) fn keep_commits(repo: &Repository, keep: &HashSet<Key>) -> Result<Repository> {
    let mut kept = Repository::with_key(repo.registry().clone(), repo.key(), repo.algorithm());
    kept.add_elements(repo.elements().iter().filter(|e| e.ty() != TypeId::COMMIT || keep.contains(&e.key())).cloned())?;
    kept.receive_branches(repo.branches().to_vec(), repo.nicknames().clone())?;
    Ok(kept)
}

/// Which of the commits a fetch received a shallow copy keeps: what is new above its history,
/// not the history beyond its boundary, unless `deepen` asks for that many more generations
/// of it (or `unshallow` for all of it).
pub(crate) fn shallow_keep(
    repo: &Repository,
    received: &[Element],
    boundary: &[String],
    opts: SyncOptions,
) -> Result<HashSet<Key>> {
    let mut commits: HashMap<Key, Vec<Key>> = HashMap::new();
    for e in received.iter().filter(|e| e.ty() == TypeId::COMMIT) {
        commits.insert(e.key(), dsf::Commit::from_element(e)?.parent_keys().collect());
    }
    let all: HashSet<Key> = commits.keys().copied().collect();
    if opts.unshallow || boundary.is_empty() {
        return Ok(all);
    }
    let edge: Vec<Key> = boundary
        .iter()
        .filter_map(|b| Key::from_hex(b))
        .filter_map(|b| repo.commit_info(b).ok())
        .flat_map(|c| c.parent_keys().collect::<Vec<_>>())
        .filter(|p| commits.contains_key(p))
        .collect();
    let through_received = |k: &Key| commits.get(k).cloned();
    let beyond: HashSet<Key> = new_commits(&edge, &[], through_received).into_iter().collect();
    let mut keep: HashSet<Key> = all.difference(&beyond).copied().collect();
    if let Some(n) = opts.deepen {
        keep.extend(within_depth(&edge, n, |k| commits.get(k).cloned()));
    }
    Ok(keep)
}

pub(crate) async fn connect(
    ui: &Ui,
    name: &str,
    target: &Target,
    registry: &Registry,
    opts: SyncOptions,
) -> Result<Remote> {
    let progress = ui.progress(&format!("connecting to {name}"), None);
    let remote = Remote::connect(target, registry, opts.timeout).await?;
    progress.finish();
    Ok(remote)
}

/// Keys per fetch_blobs request while completing history.
pub(crate) const FETCH_BATCH: usize = 8192;

/// The keys below an element, not following links to `excluded` types.
pub(crate) fn children_of(e: &Element, registry: &Registry, excluded: &[TypeId]) -> Result<Vec<Key>> {
    if excluded.is_empty() {
        return Ok(e.children().to_vec());
    }
    Ok(e.links(registry)?.into_iter().filter(|(_, ty)| !excluded.contains(ty)).map(|(k, _)| k).collect())
}

/// Fetches the graphs below `roots` that are neither in `repo` nor in the local `store`, level
/// by level, not following links to `excluded` types: one request per level and batch, and only
/// what is missing. A subgraph held here is not descended (graphs are stored complete, but for
/// excluded types), unless `descend_held`, which reads what is held to find what is not (after
/// a copy made without some types asks for all of them). Returns how many elements came.
pub(crate) async fn complete_from(
    store: Option<&RocksStore>,
    repo: &mut Repository,
    remote: &Remote,
    roots: Vec<Key>,
    excluded: &[TypeId],
    descend_held: bool,
    ui: &Ui,
) -> Result<usize> {
    let registry = repo.registry().clone();
    let mut seen: HashSet<Key> = HashSet::new();
    let mut frontier: Vec<Key> = roots.into_iter().filter(|k| seen.insert(*k)).collect();
    let mut progress = ui.progress("fetching history", None);
    let mut fetched = 0;
    while !frontier.is_empty() {
        let mut next = Vec::new();
        let mut held: Vec<Element> = Vec::new();
        let mut absent: Vec<Key> = Vec::new();
        for k in frontier {
            match repo.elements().get(&k) {
                Some(e) => held.push(e.clone()),
                None => absent.push(k),
            }
        }
        if let Some(store) = store {
            let rows = store.get_blobs(absent.clone()).await?;
            let mut missing = Vec::new();
            for (k, row) in absent.into_iter().zip(rows) {
                match row {
                    Some(row) if descend_held => held.push(Element::from_stored(&row.element, &row.children)?),
                    Some(_) => {}
                    None => missing.push(k),
                }
            }
            absent = missing;
        }
        if descend_held {
            for e in &held {
                next.extend(children_of(e, &registry, excluded)?.into_iter().filter(|c| seen.insert(*c)));
            }
        }
        for batch in absent.chunks(FETCH_BATCH) {
            let elements = remote.fetch_blobs(batch).await?;
            for e in &elements {
                next.extend(children_of(e, &registry, excluded)?.into_iter().filter(|c| seen.insert(*c)));
            }
            fetched += elements.len();
            progress.add_sized(elements.len() as u64, elements.iter().map(|e| e.encoded_len() as u64).sum());
            repo.add_elements(elements)?;
        }
        frontier = next;
    }
    progress.finish();
    Ok(fetched)
}

/// Prints a remote's branches (`REMOTE/BRANCH: heads`), as text or as the command's JSON.
pub(crate) fn report_heads(ui: &Ui, name: &str, heads: &RemoteHeads) {
    for (key, hs) in &heads.branches {
        let diverged = if hs.len() > 1 { " (diverged)" } else { "" };
        ui.say(format!(
            "  {name}/{}: {}{diverged}",
            heads.name_of(key),
            hs.iter().map(|h| &h[..12]).collect::<Vec<_>>().join(", ")
        ));
    }
    ui.emit(json!({ "remote": name, "branches": heads.branches, "nicknames": heads.nicknames }));
}

pub(crate) fn no_repository(s: &Session, name: &str) -> anyhow::Error {
    fail(format!("remote {name} has no repository {}", s.wd.config.repository))
        .code(exit::REMOTE)
        .hint("`dsf-cli push` creates it there")
        .into()
}
