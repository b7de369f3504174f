//! `clone`: a new working copy from a remote (complete, or shallow with `--depth`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dsf::sync::within_depth;
use dsf::{Branch, Checkout, Key, Registry, Repository, TypeId};
use serde_json::json;

use super::sync::*;
use crate::commands::check_repository_key;
use crate::remote::Target;
use crate::session::Session;
use crate::ui::{Ui, exit, fail};
use crate::workdir::{RemoteConfig, RemoteHeads, Workdir};

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
    // With --all-types nothing is left out; otherwise what ION's clients left out (array
    // payloads), which the copy then records as excluded: its document names them by key.
    let excluded: Vec<TypeId> =
        if opts.all_types { Vec::new() } else { dsf_container::client::DEFAULT_EXCLUDED.to_vec() };
    let remote = connect(&ui, "the remote", &target, &registry, opts).await?;
    let mut progress = ui.progress("receiving", None);
    let cloned = async {
        let mut repo = remote.clone_repository(key, &registry, Some(&excluded)).await?;
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
        complete_from(None, &mut repo, &remote, roots, &excluded, false, &ui).await?;
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
        s.state_mut().excluded = s.type_names(&excluded);
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
                sr.checkout(Checkout::branch(b.clone()).excluded_types(excluded.clone())).await?;
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
