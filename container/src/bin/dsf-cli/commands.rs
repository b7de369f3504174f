//! The commands that work on the working copy and its local store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dsf::json;
use dsf::merge::{Change, ChangeKind};
use dsf::store::BlobStore;
use dsf::structure::Envelope;
use dsf::{Checkout, Current, Element, HashAlgorithm, Key, MergeOutcome, MergePolicy, Registry, Repository, TypeId};
use serde_json::{Value as Json, json};

use crate::session::{Session, Stored};
use crate::ui::{Ui, exit, fail};
use crate::workdir::{DOCUMENT, MergeState, Workdir};
use crate::{Command, RemoteCommand, TypesCommand, timefmt};

/// Runs a command; returns the exit code.
pub async fn run(dir: Option<PathBuf>, command: Command, ui: Ui) -> Result<i32> {
    let base = match dir {
        Some(d) => d,
        None => std::env::current_dir().context("cannot read the current folder")?,
    };
    match command {
        Command::Init { dir, algorithm, key } => init(&base, dir, &algorithm, key, ui),
        Command::Clone { url, key, dir, types } => {
            let types = types.into_iter().map(|t| within(&base, t)).collect::<Vec<_>>();
            crate::sync::clone(&base, &url, &key, dir, &types, ui).await
        }
        Command::Checkout { target, new_branch, before, exclude_type, all_types, force } => {
            let how = CheckoutArgs { target, new_branch, before, exclude_type, all_types, force };
            checkout(&base, how, ui).await
        }
        Command::Status => status(&base, ui).await,
        Command::Diff { from, to } => diff(&base, from, to, ui).await,
        Command::Commit { message } => commit(&base, &message, ui).await,
        Command::Branch { name, start, delete } => branch(&base, name, start, delete, ui).await,
        Command::Merge { name, policy, message, continue_, abort } => {
            if continue_ {
                merge_continue(&base, message, ui).await
            } else if abort {
                merge_abort(&base, ui).await
            } else {
                let name = name.context("name what to merge")?;
                let s = Session::open(&base)?;
                merge(&s, &name, parse_policy(&policy)?, message, ui).await
            }
        }
        Command::Log { rev, all, max, oneline } => log(&base, rev, all, max, oneline, ui).await,
        Command::Show { rev } => show(&base, rev, ui).await,
        Command::Remote(c) => match c {
            RemoteCommand::Add { name, url } => crate::sync::remote_add(&base, &name, &url, ui),
            RemoteCommand::List => crate::sync::remote_list(&base, ui),
            RemoteCommand::Remove { name } => crate::sync::remote_remove(&base, &name, ui),
        },
        Command::Push { remote, diverge } => crate::sync::push(&base, remote, diverge, ui).await,
        Command::Pull { remote, policy } => crate::sync::pull(&base, remote, parse_policy(&policy)?, ui).await,
        Command::Fetch { remote } => crate::sync::fetch(&base, remote, ui).await,
        Command::Fsck => crate::maint::fsck(&base, ui).await,
        Command::Gc { dry_run } => crate::maint::gc(&base, dry_run, ui).await,
        Command::Types { command } => match command {
            None => types_list(&base, ui),
            Some(TypesCommand::Add { file }) => types_add(&base, &within(&base, file), ui),
        },
        Command::Import { file, format, type_name, force } => {
            import(&base, &within(&base, file), &format, type_name, force, ui).await
        }
        Command::Export { rev, format, output } => {
            export(&base, rev, &format, output.map(|o| within(&base, o)), ui).await
        }
        Command::HashObject { type_name, json_text, file, algorithm } => {
            hash_object(&base, type_name, json_text, file, algorithm, ui)
        }
        Command::CatObject { key } => cat_object(&base, &key, ui).await,
        Command::HelpDocument => {
            ui.out(crate::DOCUMENT_HELP);
            Ok(exit::OK)
        }
    }
}

/// A path named on the command line, relative to the folder given with `-C` (as git does);
/// `-` (standard input or output) stays as it is.
fn within(base: &Path, path: PathBuf) -> PathBuf {
    if path == Path::new("-") { path } else { base.join(path) }
}

pub fn parse_policy(p: &str) -> Result<MergePolicy> {
    p.parse().map_err(|e: String| fail(e).code(exit::USAGE).into())
}

fn short(k: &Key) -> String {
    k.to_hex()[..12].to_owned()
}

// ----- init ---------------------------------------------------------------------------------

fn init(base: &Path, dir: Option<PathBuf>, algorithm: &str, key: Option<String>, ui: Ui) -> Result<i32> {
    let dir = dir.map_or_else(|| base.to_path_buf(), |d| base.join(d));
    let alg: HashAlgorithm = algorithm.parse().map_err(|e: String| fail(e).code(exit::USAGE))?;
    let key = key.unwrap_or_else(|| uuid::Uuid::new_v4().to_string().to_uppercase());
    check_repository_key(&key)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let wd = Workdir::create(&dir, &key, alg)?;
    ui.say(format!("Initialised an empty {} repository {} in {}", alg.name(), ui.key(&key), wd.dir.display()));
    ui.say("Next: put an object graph in root.json (`dsf-cli import FILE`), then `dsf-cli commit -m MESSAGE`.");
    ui.emit(json!({ "repository": key, "algorithm": alg.name(), "dir": wd.dir }));
    Ok(exit::OK)
}

pub fn check_repository_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 200 || key.chars().any(|c| c.is_control() || c == '/' || c.is_whitespace()) {
        return Err(fail(format!("{key:?} is not a usable repository key"))
            .hint("use letters, digits and dashes (a UUID, as ION does)")
            .code(exit::USAGE)
            .into());
    }
    Ok(())
}

// ----- status and diff -------------------------------------------------------------------------

fn change_json(c: &Change) -> Json {
    let kind = match c.kind {
        ChangeKind::Added => "added",
        ChangeKind::Removed => "removed",
        ChangeKind::Modified => "modified",
    };
    json!({ "path": c.path, "kind": kind, "before": c.before, "after": c.after })
}

fn print_changes(ui: &Ui, changes: &[Change]) {
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
async fn working_changes(
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

async fn status(base: &Path, ui: Ui) -> Result<i32> {
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

async fn diff(base: &Path, from: Option<String>, to: Option<String>, ui: Ui) -> Result<i32> {
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

// ----- commit -----------------------------------------------------------------------------

async fn commit(base: &Path, message: &str, ui: Ui) -> Result<i32> {
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
async fn record(s: &Session, sr: &mut Stored<'_>, parsed: json::Parsed, message: &str) -> Result<Key> {
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

// ----- branches and checkout ------------------------------------------------------------------

fn check_branch_name(name: &str) -> Result<()> {
    let hexlike = name.len() >= 4 && name.chars().all(|c| c.is_ascii_hexdigit());
    if name.is_empty() || name == "HEAD" || hexlike || name.contains(['/', '~', '^', ' ', ':']) {
        return Err(fail(format!("{name:?} is not a usable branch name"))
            .hint("a branch name has no '/', '~', '^', ':' or spaces, and does not look like a commit key")
            .code(exit::USAGE)
            .into());
    }
    Ok(())
}

async fn branch(base: &Path, name: Option<String>, start: Option<String>, delete: bool, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    let mut sr = s.repo().await?;
    let current = s.state().branch.clone();
    match (name, delete) {
        (None, true) => Err(fail("name the branch to delete").code(exit::USAGE).into()),
        (None, false) => {
            let repo = sr.repository();
            let mut rows: Vec<(String, &dsf::Branch)> =
                repo.branches().iter().map(|b| (s.branch_name(repo, &b.key), b)).collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            let mut list = Vec::new();
            for (name, b) in rows {
                let mark = if current.as_deref() == Some(b.key.as_str()) { "*" } else { " " };
                let heads: Vec<String> = b.heads.iter().map(short).collect();
                let about = match b.heads.as_slice() {
                    [h] => repo.commit_info(*h).map(|c| c.comment.clone()).unwrap_or_default(),
                    [] => "(no commits)".into(),
                    hs => format!("(diverged: {} heads)", hs.len()),
                };
                ui.out(format!("{mark} {:<20} {} {about}", ui.branch(&name), ui.key(&heads.join(","))));
                list.push(json!({
                    "name": name, "key": b.key, "current": mark == "*",
                    "heads": b.heads.iter().map(Key::to_hex).collect::<Vec<_>>(),
                }));
            }
            ui.emit(json!({ "branches": list }));
            Ok(exit::OK)
        }
        (Some(name), true) => {
            let repo = sr.repository_mut();
            let key = repo.get_branch(&name).map(|b| b.key.clone()).ok_or_else(|| {
                fail(format!("there is no branch {name:?}")).hint("`dsf-cli branch` lists the branches")
            })?;
            if current.as_deref() == Some(key.as_str()) {
                return Err(fail(format!("cannot delete {name}: it is checked out"))
                    .hint("check out another branch first")
                    .into());
            }
            repo.remove_branch(&name)?;
            sr.save().await?;
            ui.say(format!("Deleted branch {name}; its commits stay until `dsf-cli gc` finds them unreachable."));
            ui.emit(json!({ "deleted": name, "key": key }));
            Ok(exit::OK)
        }
        (Some(name), false) => {
            check_branch_name(&name)?;
            let at = s.resolve(sr.repository(), start.as_deref().unwrap_or("HEAD"))?;
            let key = sr.repository_mut().create_branch(&name, at)?;
            sr.save().await?;
            ui.say(format!("Branch {} starts at {}", ui.branch(&name), ui.key(&short(&at))));
            ui.emit(json!({ "branch": name, "key": key, "commit": at.to_hex() }));
            Ok(exit::OK)
        }
    }
}

struct CheckoutArgs {
    target: Option<String>,
    new_branch: Option<String>,
    before: Option<String>,
    exclude_type: Vec<String>,
    all_types: bool,
    force: bool,
}

async fn checkout(base: &Path, a: CheckoutArgs, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    let mut sr = s.repo().await?;
    let head = match s.load_current(&mut sr).await {
        Ok(h) => h,
        Err(_) if a.force => None,
        Err(e) => return Err(e),
    };
    if !a.force {
        s.require_clean(&mut sr, head, "check out").await?;
    }
    if a.all_types {
        s.state_mut().excluded.clear();
    } else if !a.exclude_type.is_empty() {
        for t in &a.exclude_type {
            let ty = resolve_type(&s.registry, t)?;
            if !s.state().excluded.iter().any(|n| s.registry.by_name(n) == Some(ty)) {
                s.state_mut().excluded.push(s.type_names(&[ty]).remove(0));
            }
        }
    }
    let excluded = s.excluded()?;
    let current = s.state().branch.clone().or_else(|| sr.repository().current_branch_key().map(str::to_owned));
    let repo = sr.repository();
    let (how, detached) = if let Some(new) = &a.new_branch {
        check_branch_name(new)?;
        let start = s.resolve(repo, a.target.as_deref().unwrap_or("HEAD"))?;
        sr.repository_mut().create_branch(new, start)?;
        (Checkout::branch(new.clone()), false)
    } else if let Some(date) = &a.before {
        let when = timefmt::parse(date).ok_or_else(|| {
            fail(format!("{date:?} is not a date")).hint("write 2026-01-31, 2026-01-31T12:00:00Z or seconds since 1970")
        })?;
        let b = a.target.clone().or(current.clone()).ok_or_else(|| fail("nothing is committed yet"))?;
        if repo.get_branch(&b).is_none() {
            return Err(fail(format!("there is no branch {b:?}")).hint("--before takes a branch").into());
        }
        (Checkout::branch(b).older_than(when), true)
    } else {
        match &a.target {
            None => (Checkout::branch(current.clone().ok_or_else(|| fail("nothing is committed yet"))?), false),
            Some(t) if repo.get_branch(t).is_some() => (Checkout::branch(t.clone()), false),
            Some(t) => {
                let commit = s.resolve(repo, t)?;
                let mut branches: Vec<&dsf::Branch> = repo.branches().iter().collect();
                branches.sort_by_key(|b| current.as_deref() != Some(b.key.as_str()));
                let holder =
                    branches.into_iter().find(|b| repo.ancestry(&b.heads).contains(&commit)).ok_or_else(|| {
                        fail(format!("commit {} is on no local branch", commit.to_hex()))
                            .hint(format!("make one there: `dsf-cli checkout -b NAME {t}`"))
                    })?;
                (Checkout::branch(holder.key.clone()).commit(commit), true)
            }
        }
    };
    sr.checkout(how.excluded_types(excluded)).await?;
    let repo = sr.repository();
    let (branch, commit) = match repo.current() {
        Some(Current::Branch(b)) => (b.clone(), repo.commit_head()?.context("the checked-out branch has no commits")?),
        Some(Current::Detached(k)) => (current.clone().unwrap_or_default(), *k),
        None => anyhow::bail!("the checkout selected nothing"),
    };
    // A detached checkout remembers the branch it was found in.
    let branch = if detached {
        repo.branches().iter().find(|b| repo.ancestry(&b.heads).contains(&commit)).map_or(branch, |b| b.key.clone())
    } else {
        branch
    };
    if a.new_branch.is_some() {
        sr.save().await?;
    }
    s.state_mut().branch = Some(branch.clone());
    s.state_mut().detached = detached;
    s.state_mut().merge = None;
    s.write_checkout(sr.repository(), commit)?;
    let name = s.branch_name(sr.repository(), &branch);
    if detached {
        ui.say(format!(
            "Checked out {} (read only; `dsf-cli checkout -b NAME` to work from here)",
            ui.key(&commit.to_hex())
        ));
    } else {
        ui.say(format!("On branch {} at {}", ui.branch(&name), ui.key(&short(&commit))));
    }
    ui.emit(json!({ "branch": name, "commit": commit.to_hex(), "detached": detached, "excluded": s.state().excluded }));
    Ok(exit::OK)
}

// ----- merge --------------------------------------------------------------------------------

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

async fn merge_continue(base: &Path, message: Option<String>, ui: Ui) -> Result<i32> {
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

async fn merge_abort(base: &Path, ui: Ui) -> Result<i32> {
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

// ----- history ------------------------------------------------------------------------------

/// Commits reachable from `starts`, children before parents, newest first among the ready.
fn topo_order(repo: &Repository, starts: &[Key]) -> Vec<Key> {
    let all = repo.ancestry(starts);
    let set: HashSet<Key> = all.iter().copied().collect();
    let mut children: HashMap<Key, usize> = HashMap::new();
    for k in &all {
        if let Ok(c) = repo.commit_info(*k) {
            for p in c.parent_keys().filter(|p| set.contains(p)) {
                *children.entry(p).or_default() += 1;
            }
        }
    }
    let date = |k: &Key| repo.commit_info(*k).map(|c| c.date).unwrap_or(0.0);
    let mut ready: Vec<Key> = all.iter().copied().filter(|k| !children.contains_key(k)).collect();
    let mut out = Vec::with_capacity(all.len());
    while !ready.is_empty() {
        let (i, _) = ready
            .iter()
            .enumerate()
            .max_by(|a, b| date(a.1).total_cmp(&date(b.1)).then_with(|| b.1.cmp(a.1)))
            .expect("not empty");
        let k = ready.swap_remove(i);
        out.push(k);
        if let Ok(c) = repo.commit_info(k) {
            for p in c.parent_keys().filter(|p| set.contains(p)) {
                let n = children.get_mut(&p).expect("counted");
                *n -= 1;
                if *n == 0 {
                    ready.push(p);
                }
            }
        }
    }
    out
}

/// Draws lanes, git style: `*` for the commit, `|` for lanes still waiting for their commit,
/// `/` where a lane joins the commit's lane, `\\` where a merge opens a lane.
struct Graph {
    lanes: Vec<Option<Key>>,
}

/// The lines [`Graph::place`] draws for one commit.
struct Rows {
    /// Lanes joining before the commit.
    before: Vec<String>,
    /// The commit's row prefix.
    line: String,
    /// The prefix of the commit's further lines.
    cont: String,
    /// Lanes a merge opens after the commit.
    after: Vec<String>,
}

impl Graph {
    fn cells(&self, marks: &[(usize, char)]) -> String {
        let width = self.lanes.len().max(marks.iter().map(|m| m.0 / 2 + 1).max().unwrap_or(0));
        let mut row: Vec<char> = vec![' '; width * 2];
        for (i, l) in self.lanes.iter().enumerate() {
            if l.is_some() {
                row[i * 2] = '|';
            }
        }
        for &(at, c) in marks {
            if at < row.len() {
                row[at] = c;
            }
        }
        row.into_iter().collect::<String>().trim_end().to_owned()
    }

    fn free_lane(&mut self, k: Key) -> usize {
        match self.lanes.iter().position(Option::is_none) {
            Some(free) => {
                self.lanes[free] = Some(k);
                free
            }
            None => {
                self.lanes.push(Some(k));
                self.lanes.len() - 1
            }
        }
    }

    fn place(&mut self, commit: Key, parents: &[Key]) -> Rows {
        let col = match self.lanes.iter().position(|l| *l == Some(commit)) {
            Some(c) => c,
            None => self.free_lane(commit),
        };
        let mut before = Vec::new();
        let joined: Vec<usize> = (0..self.lanes.len()).filter(|&i| i != col && self.lanes[i] == Some(commit)).collect();
        if !joined.is_empty() {
            let marks: Vec<(usize, char)> = joined
                .iter()
                .flat_map(|&j| [(j * 2, ' '), if j > col { (j * 2 - 1, '/') } else { (j * 2 + 1, '\\') }])
                .collect();
            before.push(self.cells(&marks));
            for &j in &joined {
                self.lanes[j] = None;
            }
            while self.lanes.last() == Some(&None) {
                self.lanes.pop();
            }
        }
        let line = format!("{} ", self.cells(&[(col * 2, '*')]));
        let line = format!("{line:<width$}", width = self.lanes.len() * 2);
        self.lanes[col] = parents.first().copied();
        let mut after = Vec::new();
        for p in parents.iter().skip(1) {
            if self.lanes.contains(&Some(*p)) {
                continue;
            }
            let at = self.free_lane(*p);
            let mark = if at > col { (at * 2 - 1, '\\') } else { (at * 2 + 1, '/') };
            after.push(self.cells(&[(at * 2, ' '), mark]));
        }
        while self.lanes.last() == Some(&None) {
            self.lanes.pop();
        }
        let cont = format!("{:<width$}", self.cells(&[]), width = self.lanes.len() * 2);
        Rows { before, line, cont, after }
    }
}

async fn log(base: &Path, rev: Option<String>, all: bool, max: Option<usize>, oneline: bool, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    let sr = s.repo().await?;
    let repo = sr.repository();
    let mut labels: BTreeMap<Key, Vec<String>> = BTreeMap::new();
    let head = s.state().commit.as_deref().and_then(Key::from_hex);
    for b in repo.branches() {
        let name = s.branch_name(repo, &b.key);
        for h in &b.heads {
            let current = s.state().branch.as_deref() == Some(b.key.as_str()) && !s.state().detached;
            labels.entry(*h).or_default().push(if current { format!("HEAD -> {name}") } else { name.clone() });
        }
    }
    if let (Some(h), true) = (head, s.state().detached) {
        labels.entry(h).or_default().insert(0, "HEAD".into());
    }
    let mut remote_heads = Vec::new();
    for (remote, heads) in s.wd.all_remote_heads()? {
        for (key, hs) in &heads.branches {
            for h in hs.iter().filter_map(|h| Key::from_hex(h)) {
                if repo.commit_info(h).is_ok() {
                    labels.entry(h).or_default().push(format!("{remote}/{}", heads.name_of(key)));
                    remote_heads.push(h);
                }
            }
        }
    }
    let starts: Vec<Key> = if all {
        let mut v = repo.current_heads();
        v.extend(remote_heads);
        v
    } else {
        vec![s.resolve(repo, rev.as_deref().unwrap_or("HEAD"))?]
    };
    let order = topo_order(repo, &starts);
    let mut graph = Graph { lanes: Vec::new() };
    let mut list = Vec::new();
    for k in order.iter().take(max.unwrap_or(usize::MAX)) {
        let c = repo.commit_info(*k)?;
        let parents: Vec<Key> = c.parent_keys().collect();
        let Rows { before, line, cont, after } = graph.place(*k, &parents);
        for b in before {
            ui.out(b);
        }
        let tags = labels.get(k).map(|l| format!(" ({})", l.join(", "))).unwrap_or_default();
        if oneline {
            ui.out(format!(
                "{line}{}{} {}",
                ui.key(&short(k)),
                ui.branch(&tags),
                c.comment.lines().next().unwrap_or("")
            ));
        } else {
            ui.out(format!("{line}{} {}{}", ui.key("commit"), ui.key(&k.to_hex()), ui.branch(&tags)));
            if parents.len() > 1 {
                ui.out(format!("{cont}Merge: {}", parents.iter().map(short).collect::<Vec<_>>().join(" ")));
            }
            ui.out(format!("{cont}Date:  {}", timefmt::format(c.date)));
            ui.out(cont.trim_end());
            for l in c.comment.lines() {
                ui.out(format!("{cont}    {l}"));
            }
            ui.out(cont.trim_end());
        }
        for a in after {
            ui.out(a);
        }
        list.push(json!({
            "commit": k.to_hex(), "date": c.date, "comment": c.comment,
            "parents": c.parents.iter().map(|p| json!({"commit": p.commit.to_hex(), "relationship": format!("{:?}", p.relationship).to_lowercase()})).collect::<Vec<_>>(),
            "labels": labels.get(k).cloned().unwrap_or_default(),
        }));
    }
    ui.emit(json!({ "commits": list }));
    Ok(exit::OK)
}

async fn show(base: &Path, rev: Option<String>, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    let mut sr = s.repo().await?;
    let k = s.resolve(sr.repository(), rev.as_deref().unwrap_or("HEAD"))?;
    let c = sr.repository().commit_info(k)?.clone();
    let first = c.first_parent();
    let mut commits = vec![k];
    commits.extend(first);
    s.load_commits(&mut sr, &commits).await?;
    let repo = sr.repository();
    ui.out(format!("{} {}", ui.key("commit"), ui.key(&k.to_hex())));
    for p in &c.parents {
        ui.out(format!("{:?}: {}", p.relationship, p.commit.to_hex()));
    }
    ui.out(format!("Date:  {}", timefmt::format(c.date)));
    ui.out("");
    for l in c.comment.lines() {
        ui.out(format!("    {l}"));
    }
    ui.out("");
    let root = Session::root_of(repo, k)?;
    let changes = match first {
        Some(p) => dsf::merge::diff_graphs(&s.registry, repo.elements(), Session::root_of(repo, p)?, root)?,
        None => Vec::new(),
    };
    if first.is_none() {
        ui.out(format!("(first commit: root object {})", root.to_hex()));
    }
    print_changes(&ui, &changes);
    ui.emit(json!({
        "commit": k.to_hex(), "date": c.date, "comment": c.comment, "root": root.to_hex(),
        "parents": c.parents.iter().map(|p| p.commit.to_hex()).collect::<Vec<_>>(),
        "changes": changes.iter().map(change_json).collect::<Vec<_>>(),
    }));
    Ok(exit::OK)
}

// ----- types --------------------------------------------------------------------------------

/// A type by full name, `ID` or `ID/VERSION`.
pub fn resolve_type(registry: &Registry, name: &str) -> Result<TypeId> {
    let by_id = || -> Option<TypeId> {
        let (id, version) = name.split_once('/').unwrap_or((name, "1"));
        Some(TypeId::new(id.parse().ok()?, version.parse().ok()?))
    };
    let ty = registry.by_name(name).or_else(by_id).filter(|t| registry.get(*t).is_some());
    ty.ok_or_else(|| {
        fail(format!("unknown type {name:?}"))
            .hint("`dsf-cli types` lists the registered types; `dsf-cli types add FILE` registers more")
            .into()
    })
}

fn types_list(base: &Path, ui: Ui) -> Result<i32> {
    let registry = match Workdir::find(base) {
        Ok(wd) => wd.registry()?,
        Err(_) => Registry::builtin(),
    };
    let mut types: Vec<_> = registry.types().into_iter().map(|t| (t.id, t.name().to_owned())).collect();
    types.sort();
    for (id, name) in &types {
        ui.out(format!("{:>8}/{}  {name}", id.object_id, id.version));
    }
    ui.emit(json!({
        "types": types.iter().map(|(id, n)| json!({"id": id.object_id, "version": id.version, "name": n})).collect::<Vec<_>>(),
    }));
    Ok(exit::OK)
}

fn types_add(base: &Path, file: &Path, ui: Ui) -> Result<i32> {
    let wd = Workdir::find(base)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let before: HashSet<TypeId> = wd.registry()?.types().iter().map(|t| t.id).collect();
    let mut sets: Vec<Vec<u8>> = wd.descriptor_sets()?.into_iter().map(|(_, b)| b).collect();
    sets.push(bytes.clone());
    let mut all: Vec<&[u8]> = vec![dsf::proto::DESCRIPTOR_SET];
    all.extend(sets.iter().map(Vec::as_slice));
    let registry = Registry::from_descriptor_sets(&all).map_err(|e| {
        fail(format!("{} cannot be registered: {e}", file.display()))
            .hint("give a FileDescriptorSet made with protoc --include_imports --descriptor_set_out=FILE")
    })?;
    let mut added: Vec<_> =
        registry.types().into_iter().filter(|t| !before.contains(&t.id)).map(|t| (t.id, t.name().to_owned())).collect();
    added.sort();
    if added.is_empty() {
        return Err(fail(format!("{} declares no new types", file.display()))
            .hint("a type is a message with enum _MessageTypeIdentifier { _ID = n; _VERSION = 1; }")
            .into());
    }
    let stem = file.file_stem().map_or_else(|| "types".into(), |s| s.to_string_lossy().into_owned());
    let mut name = format!("{stem}.pb");
    let mut n = 1;
    while wd.dir.join(crate::workdir::DOT).join("types").join(&name).exists() {
        n += 1;
        name = format!("{stem}-{n}.pb");
    }
    wd.add_descriptor_set(&name, &bytes)?;
    for (id, name) in &added {
        ui.say(format!("registered {:>6}/{}  {name}", id.object_id, id.version));
    }
    ui.emit(json!({ "added": added.iter().map(|(id, n)| json!({"id": id.object_id, "version": id.version, "name": n})).collect::<Vec<_>>() }));
    Ok(exit::OK)
}

// ----- import and export ----------------------------------------------------------------------

fn read_input(file: &Path) -> Result<Vec<u8>> {
    if file == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).context("cannot read standard input")?;
        Ok(buf)
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
    }
}

fn with_type(doc: Json, type_name: Option<&str>, registry: &Registry) -> Result<Json> {
    match (doc, type_name) {
        (Json::Object(mut m), Some(t)) if !m.contains_key(json::TYPE) => {
            let ty = resolve_type(registry, t)?;
            let name = registry.get(ty).map(|i| i.name().to_owned()).unwrap_or_default();
            m.insert(json::TYPE.to_owned(), Json::String(name));
            Ok(Json::Object(m))
        }
        (doc, _) => Ok(doc),
    }
}

async fn import(base: &Path, file: &Path, format: &str, type_name: Option<String>, force: bool, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    let mut sr = s.repo().await?;
    let head = s.load_current(&mut sr).await?;
    if !force {
        s.require_clean(&mut sr, head, "import").await?;
    }
    let bytes = read_input(file)?;
    let bad = |e: String| fail(format!("{}: {e}", file.display())).hint("nothing was changed");
    let alg = sr.repository().algorithm();
    let (root, new) = match format {
        "json" => {
            let doc = crate::workdir::parse_json(&bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
            let doc = with_type(doc, type_name.as_deref(), &s.registry)?;
            let parsed = s.parse(&mut sr, doc).await.map_err(|e| bad(e.to_string()))?;
            (parsed.root, parsed.new_elements)
        }
        "binary" => {
            let env = Envelope::decode(&s.registry, &bytes).map_err(|e| bad(e.to_string()))?;
            let root = env.head.key();
            let mut all: Vec<Element> = env.items.into_values().collect();
            all.push(env.head);
            if let Some(e) = all.iter().find(|e| e.key().algorithm() != alg) {
                return Err(bad(format!(
                    "element {} is keyed by {}, this repository by {}",
                    e.key(),
                    e.key().algorithm().name(),
                    alg.name()
                ))
                .into());
            }
            (root, all)
        }
        _ => {
            let t = type_name.as_deref().ok_or_else(|| fail("--format message needs --type").code(exit::USAGE))?;
            let ty = resolve_type(&s.registry, t)?;
            let desc = s.registry.require(ty)?.descriptor.clone();
            dsf::prost_reflect::DynamicMessage::decode(desc, bytes.as_slice())
                .map_err(|e| bad(format!("not an encoded {t}: {e}")))?;
            let e = Element::build(alg, &s.registry, ty, bytes).map_err(|e| bad(e.to_string()))?;
            (e.key(), vec![e])
        }
    };
    // Every link must lead to something here or in the file.
    let count = new.len();
    sr.repository_mut().add_elements(new)?;
    let known: HashSet<Key> = sr.repository().elements().iter().map(|e| e.key()).collect();
    let mut dangling: Vec<Key> = Vec::new();
    for e in sr.repository().elements().iter() {
        dangling.extend(e.children().iter().filter(|c| !known.contains(c)));
    }
    if !dangling.is_empty() {
        let present = s.store.has_blobs(dangling.clone()).await?;
        if let Some((k, _)) = dangling.iter().zip(present).find(|(_, has)| !has) {
            return Err(bad(format!("it links to object {k}, which is neither in the file nor stored")).into());
        }
        sr.fetch_graphs(dangling, &s.excluded()?).await?;
    }
    let doc = s.render(sr.repository(), root)?;
    s.wd.write_document(Some(&doc))?;
    ui.say(format!("Imported {count} objects into {DOCUMENT}: review it, then `dsf-cli commit -m MESSAGE`."));
    ui.emit(json!({ "root": root.to_hex(), "objects": count }));
    Ok(exit::OK)
}

fn all_types(registry: &Registry) -> Vec<TypeId> {
    registry.types().iter().map(|t| t.id).collect()
}

async fn export(base: &Path, rev: Option<String>, format: &str, output: Option<PathBuf>, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    let sr = s.repo().await?;
    let k = s.resolve(sr.repository(), rev.as_deref().unwrap_or("HEAD"))?;
    let root = Session::root_of(sr.repository(), k)?;
    let elements = dsf::store::persist::collect(&s.store, &s.registry, &[root], &[], |_| false).await?;
    let bytes = if format == "json" {
        let mut index = Repository::with_key(s.registry.clone(), "export", sr.repository().algorithm());
        index.add_elements(elements)?;
        let doc = json::render(&s.registry, index.elements(), root, &[])?;
        let mut b = serde_json::to_vec_pretty(&doc)?;
        b.push(b'\n');
        b
    } else {
        let mut items: HashMap<Key, Element> = elements.into_iter().map(|e| (e.key(), e)).collect();
        let head = items.remove(&root).context("the root was collected")?;
        if output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            return Err(fail("binary output to a terminal").hint("add -o FILE, or redirect standard output").into());
        }
        Envelope { head, items }.encode()
    };
    match &output {
        Some(path) => std::fs::write(path, &bytes).with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(&bytes)?,
    }
    if output.is_some() {
        ui.say(format!("Wrote commit {} ({} bytes)", ui.key(&short(&k)), bytes.len()));
    }
    Ok(exit::OK)
}

// ----- plumbing -----------------------------------------------------------------------------

fn hash_object(
    base: &Path,
    type_name: Option<String>,
    json_text: Option<String>,
    file: Option<PathBuf>,
    algorithm: Option<String>,
    ui: Ui,
) -> Result<i32> {
    let wd = Workdir::find(base).ok();
    let registry = match &wd {
        Some(wd) => wd.registry()?,
        None => Registry::builtin(),
    };
    let alg: HashAlgorithm = match (&algorithm, &wd) {
        (Some(a), _) => a.parse().map_err(|e: String| fail(e).code(exit::USAGE))?,
        (None, Some(wd)) => wd.algorithm()?,
        (None, None) => HashAlgorithm::default(),
    };
    // `hash-object --json TEXT`: with the global --json flag, an argument that is no file but
    // an object's JSON text is that text.
    let json_text = match (json_text, &file) {
        (Some(t), _) => Some(t),
        (None, Some(f)) if ui.json && !base.join(f).exists() && f.to_string_lossy().trim_start().starts_with('{') => {
            Some(f.to_string_lossy().into_owned())
        }
        _ => None,
    };
    let bytes = match (&json_text, &file) {
        (Some(t), _) => t.clone().into_bytes(),
        (None, Some(f)) => read_input(&within(base, f.clone()))?,
        (None, None) => {
            return Err(fail("give the object's JSON with --text TEXT, or a FILE").code(exit::USAGE).into());
        }
    };
    let looks_json = json_text.is_some() || bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let (key, ty) = if looks_json {
        let doc = crate::workdir::parse_json(&bytes).map_err(|e| fail(format!("not valid JSON: {e}")))?;
        let doc = with_type(doc, type_name.as_deref(), &registry)?;
        let parsed = json::parse(&registry, alg, &dsf::Elements::default(), doc).map_err(|e| {
            fail(e.to_string()).hint("an object is JSON in the form of root.json; give --type if it has no \"@type\"")
        })?;
        (parsed.root, parsed.root_type)
    } else {
        let t = type_name.ok_or_else(|| fail("binary input needs --type").code(exit::USAGE))?;
        let ty = resolve_type(&registry, &t)?;
        let desc = registry.require(ty)?.descriptor.clone();
        dsf::prost_reflect::DynamicMessage::decode(desc, bytes.as_slice())
            .map_err(|e| fail(format!("the input is not an encoded {t}: {e}")))?;
        (alg.element_key(&bytes, ty), ty)
    };
    ui.out(key.to_hex());
    ui.emit(
        json!({ "key": key.to_hex(), "type": { "id": ty.object_id, "version": ty.version }, "algorithm": alg.name() }),
    );
    Ok(exit::OK)
}

/// Reads one element from the local store (a blob, or a commit row); `None` if absent.
pub async fn stored_element(s: &Session, key: Key) -> Result<Option<Element>> {
    use dsf::store::{BlobStore, KvStore};
    if let Some(row) = s.store.get_blobs(vec![key]).await?.pop().flatten() {
        return Ok(Some(Element::from_stored(&row.element, &row.children)?));
    }
    match s.store.get(key.as_bytes().to_vec()).await? {
        Some(v) => Ok(Some(Element::decode(&s.registry, &v)?)),
        None => Ok(None),
    }
}

async fn cat_object(base: &Path, key: &str, ui: Ui) -> Result<i32> {
    let s = Session::open(base)?;
    let k = Key::from_hex(key).ok_or_else(|| {
        fail(format!("{key:?} is not a key")).hint("a key is 40 hex digits (64 for blake3)").code(exit::USAGE)
    })?;
    let e = stored_element(&s, k).await?.ok_or_else(|| fail(format!("no object {k} in the local store")))?;
    let mut index = dsf::Elements::default();
    index.insert(e);
    let doc = json::render(&s.registry, &index, k, &all_types(&s.registry))?;
    let text = serde_json::to_string_pretty(&doc)?;
    if ui.json {
        ui.emit(doc);
    } else {
        ui.out(text);
    }
    Ok(exit::OK)
}
