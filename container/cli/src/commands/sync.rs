//! Remotes and the commands that talk to them: clone, fetch, pull, push.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use dsf::store::BlobStore;
use dsf::sync::{PushWalk, new_commits, within_depth};
use dsf::{Branch, Checkout, Element, Key, MergePolicy, Registry, Repository, TypeId};
use dsf_store_backends::rocks::RocksStore;
use serde_json::json;

use crate::commands::check_repository_key;
use crate::remote::{Remote, RemoteState, Target};
use crate::session::{Session, Stored};
use crate::ui::{Progress, Ui, exit, fail};
use crate::workdir::{RemoteConfig, RemoteHeads, Workdir};

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

/// A local path made absolute (relative to `base`), so the remote works from anywhere; other
/// URLs as given, once they parse.
fn absolute_url(base: &Path, url: &str) -> Result<String> {
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

fn unknown_remote(wd: &Workdir, name: &str) -> crate::ui::Failure {
    let known: Vec<&str> = wd.config.remotes.keys().map(String::as_str).collect();
    fail(format!("there is no remote {name:?}")).hint(if known.is_empty() {
        "add one with `dsf-cli remote add NAME URL`".to_owned()
    } else {
        format!("known remotes: {}", known.join(", "))
    })
}

/// The remote a command names (default `origin`).
fn remote_of(wd: &Workdir, name: Option<String>) -> Result<(String, Target)> {
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

fn parents_in(repo: &Repository) -> impl FnMut(&Key) -> Option<Vec<Key>> + '_ {
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
fn keep_commits(repo: &Repository, keep: &HashSet<Key>) -> Result<Repository> {
    let mut kept = Repository::with_key(repo.registry().clone(), repo.key(), repo.algorithm());
    kept.add_elements(repo.elements().iter().filter(|e| e.ty() != TypeId::COMMIT || keep.contains(&e.key())).cloned())?;
    kept.receive_branches(repo.branches().to_vec(), repo.nicknames().clone())?;
    Ok(kept)
}

/// Which of the commits a fetch received a shallow copy keeps: what is new above its history,
/// not the history beyond its boundary, unless `deepen` asks for that many more generations
/// of it (or `unshallow` for all of it).
fn shallow_keep(
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

async fn connect(ui: &Ui, name: &str, target: &Target, registry: &Registry, opts: SyncOptions) -> Result<Remote> {
    let progress = ui.progress(&format!("connecting to {name}"), None);
    let remote = Remote::connect(target, registry, opts.timeout).await?;
    progress.finish();
    Ok(remote)
}

/// Keys per fetch_blobs request while completing history.
const FETCH_BATCH: usize = 8192;

/// The keys below an element, not following links to `excluded` types.
fn children_of(e: &Element, registry: &Registry, excluded: &[TypeId]) -> Result<Vec<Key>> {
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
async fn complete_from(
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

pub async fn clone(
    base: &Path,
    url: &str,
    key: &str,
    dir: Option<PathBuf>,
    types: &[PathBuf],
    opts: SyncOptions,
    ui: Ui,
) -> Result<i32> {
    check_repository_key(key)?;
    let dir = base.join(dir.unwrap_or_else(|| PathBuf::from(key)));
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(fail(format!("{} already exists and is not empty", dir.display()))
            .hint("clone into a new folder")
            .into());
    }
    let url = absolute_url(base, url)?;
    let url = url.as_str();
    let target = Target::parse(url)?;
    let mut sets: Vec<(String, Vec<u8>)> = Vec::new();
    for t in types {
        let bytes = std::fs::read(t).with_context(|| format!("cannot read {}", t.display()))?;
        let stem = t.file_stem().map_or_else(|| "types".into(), |s| s.to_string_lossy().into_owned());
        sets.push((format!("{stem}-{}.pb", sets.len() + 1), bytes));
    }
    let mut all: Vec<&[u8]> = vec![dsf::proto::DESCRIPTOR_SET];
    all.extend(sets.iter().map(|(_, b)| b.as_slice()));
    let registry = Registry::from_descriptor_sets(&all).map_err(|e| {
        fail(format!("the --types files cannot be registered: {e}"))
            .hint("give FileDescriptorSets made with protoc --include_imports --descriptor_set_out=FILE")
    })?;
    // With --all-types nothing is left out; otherwise the client leaves out what it leaves out
    // by default.
    let excluded: Option<Vec<TypeId>> = opts.all_types.then(Vec::new);
    let remote = connect(&ui, "the remote", &target, &registry, opts).await?;
    let mut progress = ui.progress("receiving", None);
    let cloned = async {
        let mut repo = remote.clone_repository(key, &registry, excluded.as_deref()).await?;
        if let Some(depth) = opts.depth {
            let heads: Vec<Key> = repo.branches().iter().flat_map(|b| b.heads.iter().copied()).collect();
            let keep: HashSet<Key> = within_depth(&heads, depth, parents_in(&repo)).into_iter().collect();
            repo = keep_commits(&repo, &keep)?;
        }
        let roots = repo
            .commits()
            .filter_map(|c| c.root.as_ref().map(|r| r.key))
            .filter(|k| !repo.elements().contains(k))
            .collect();
        complete_from(None, &mut repo, &remote, roots, &[], false, &ui).await?;
        let remote_heads = RemoteHeads::from_branches(repo.branches(), repo.nicknames());
        anyhow::Ok((one_head_per_branch(repo)?, remote_heads))
    }
    .await;
    remote.close().await;
    let (repo, remote_heads) = cloned?;
    progress.add(repo.elements().len() as u64);
    progress.finish();
    let made = !dir.exists();
    let result = async {
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut wd = Workdir::create(&dir, key, repo.algorithm())?;
        wd.config.remotes.insert("origin".into(), RemoteConfig { url: url.to_owned() });
        wd.save_config()?;
        for (name, bytes) in &sets {
            wd.add_descriptor_set(name, bytes)?;
        }
        wd.save_remote_heads("origin", &remote_heads)?;
        for (b, heads) in &remote_heads.branches {
            if heads.len() > 1 {
                ui.say(format!(
                    "origin/{} has {} divergent heads: the newest is checked out, `dsf-cli pull` merges the others",
                    remote_heads.name_of(b),
                    heads.len()
                ));
            }
        }
        let s = Session::with(wd)?;
        s.state_mut().shallow = shallow_boundary(&repo);
        let elements = repo.elements().len();
        let branch = repo
            .get_branch(dsf::MASTER_BRANCH)
            .or_else(|| repo.branches().iter().find(|b| !b.heads.is_empty()))
            .map(|b| b.key.clone());
        let store_progress = ui.progress("storing", None);
        let mut sr = dsf::store::persist::StoredRepository::create(&s.store, repo);
        sr.save().await?;
        store_progress.finish();
        let commit = match branch {
            Some(b) => {
                let writing = ui.progress("writing root.json", None);
                sr.checkout(Checkout::branch(b.clone()).excluded_types([])).await?;
                let head = sr.repository().commit_head()?.context("the cloned branch has no commits")?;
                s.state_mut().branch = Some(b);
                s.write_checkout(sr.repository(), head)?;
                writing.finish();
                Some(head)
            }
            None => None,
        };
        anyhow::Ok((elements, commit, s.wd.dir.clone()))
    }
    .await;
    match result {
        Ok((elements, commit, dir)) => {
            ui.say(format!(
                "Cloned {key} into {} ({elements} elements){}",
                dir.display(),
                commit.map(|c| format!(", checked out {}", ui.key(&c.to_hex()[..12]))).unwrap_or_default()
            ));
            ui.emit(
                json!({ "repository": key, "dir": dir, "elements": elements, "commit": commit.map(|c| c.to_hex()) }),
            );
            Ok(exit::OK)
        }
        Err(e) => {
            // Leave nothing half made behind.
            if made {
                let _ = std::fs::remove_dir_all(&dir);
            } else {
                let _ = std::fs::remove_dir_all(dir.join(crate::workdir::DOT));
                let _ = std::fs::remove_file(dir.join(crate::workdir::DOCUMENT));
            }
            Err(e)
        }
    }
}

/// A clone's local branches start at one head each (the newest), so that local branches never
/// diverge: the remote's other heads stay recorded as the remote's (`REMOTE/BRANCH`) for
/// `pull` to merge field by field.
fn one_head_per_branch(repo: Repository) -> Result<Repository> {
    if repo.branches().iter().all(|b| b.heads.len() <= 1) {
        return Ok(repo);
    }
    let newest = |heads: &[Key]| {
        heads.iter().copied().max_by(|a, b| {
            let date = |k: &Key| repo.commit_info(*k).map(|c| c.date).unwrap_or(f64::MIN);
            date(a).total_cmp(&date(b)).then_with(|| a.cmp(b))
        })
    };
    let branches: Vec<Branch> = repo
        .branches()
        .iter()
        .map(|b| Branch { key: b.key.clone(), heads: newest(&b.heads).into_iter().collect() })
        .collect();
    let mut one = Repository::with_key(repo.registry().clone(), repo.key(), repo.algorithm());
    one.add_elements(repo.elements().iter().cloned())?;
    one.receive_branches(branches, repo.nicknames().clone())?;
    Ok(one)
}

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
        let Some((state, mut elements)) = remote.fetch(sr.repository(), false).await? else {
            return anyhow::Ok(None);
        };
        let boundary = s.state().shallow.clone();
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
    if boundary != s.state().shallow {
        s.state_mut().shallow = boundary;
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

/// Prints a remote's branches (`REMOTE/BRANCH: heads`), as text or as the command's JSON.
fn report_heads(ui: &Ui, name: &str, heads: &RemoteHeads) {
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

fn no_repository(s: &Session, name: &str) -> anyhow::Error {
    fail(format!("remote {name} has no repository {}", s.wd.config.repository))
        .code(exit::REMOTE)
        .hint("`dsf-cli push` creates it there")
        .into()
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
