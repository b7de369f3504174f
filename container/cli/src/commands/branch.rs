//! `branch` and `checkout`.

use std::path::Path;

use anyhow::{Context, Result};
use dsf::{Checkout, Current, Key};
use serde_json::json;

use super::*;
use crate::session::Session;
use crate::timefmt;
use crate::ui::{Ui, exit, fail};

pub fn check_branch_name(name: &str) -> Result<()> {
    let hexlike = name.len() >= 4 && name.chars().all(|c| c.is_ascii_hexdigit());
    if name.is_empty() || name == "HEAD" || hexlike || name.contains(['/', '~', '^', ' ', ':']) {
        return Err(fail(format!("{name:?} is not a usable branch name"))
            .hint("a branch name has no '/', '~', '^', ':' or spaces, and does not look like a commit key")
            .code(exit::USAGE)
            .into());
    }
    Ok(())
}

pub async fn branch(base: &Path, name: Option<String>, start: Option<String>, delete: bool, ui: Ui) -> Result<i32> {
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

/// The options of `checkout`.
#[derive(Debug, Clone, Default)]
pub struct CheckoutArgs {
    /// A branch, or a revision for a read-only checkout (default: the current branch).
    pub target: Option<String>,
    /// Make a new branch at the target and switch to it.
    pub new_branch: Option<String>,
    /// The newest commit dated at or before this date (read only).
    pub before: Option<String>,
    /// Types to leave out.
    pub exclude_type: Vec<String>,
    /// Load every type.
    pub all_types: bool,
    /// Discard uncommitted changes.
    pub force: bool,
}

pub async fn checkout(base: &Path, a: CheckoutArgs, ui: Ui) -> Result<i32> {
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
