//! One command's view of a working copy: its store, its registry, its repository, and the
//! translations between the document and the repository.

use std::cell::{Ref, RefCell, RefMut};
use std::path::Path;

use anyhow::{Context, Result};
use dsf::json::{self, Parsed};
use dsf::store::BlobStore;
use dsf::store::persist::StoredRepository;
use dsf::{Checkout, Key, Registry, Repository, TypeId};
use dsf_store_backends::rocks::RocksStore;
use serde_json::Value as Json;

use crate::ui::{exit, fail};
use crate::workdir::{State, Workdir};

/// An opened working copy with its store.
#[derive(Debug)]
pub struct Session {
    /// The working copy.
    pub wd: Workdir,
    /// The local store.
    pub store: RocksStore,
    /// Built-in and registered types.
    pub registry: Registry,
    /// What the document was written from (saved with [`Session::save_state`]).
    state: RefCell<State>,
}

/// The local repository, as stored.
pub type Stored<'s> = StoredRepository<'s, RocksStore>;

impl Session {
    /// Opens the working copy containing `dir`.
    pub fn open(dir: &Path) -> Result<Session> {
        let wd = Workdir::find(dir)?;
        Session::with(wd)
    }

    /// Opens the store of an opened working copy.
    pub fn with(wd: Workdir) -> Result<Session> {
        let registry = wd.registry()?;
        let store = wd.store()?;
        let state = RefCell::new(wd.state.clone());
        Ok(Session { wd, store, registry, state })
    }

    /// The checkout state.
    pub fn state(&self) -> Ref<'_, State> {
        self.state.borrow()
    }

    /// The checkout state, to change.
    pub fn state_mut(&self) -> RefMut<'_, State> {
        self.state.borrow_mut()
    }

    /// Writes the checkout state.
    pub fn save_state(&self) -> Result<()> {
        self.wd.write_state(&self.state.borrow())
    }

    /// The repository: as stored (its whole history: the commands show, search and walk it),
    /// or new if nothing was committed yet.
    pub async fn repo(&self) -> Result<Stored<'_>> {
        let key = &self.wd.config.repository;
        Ok(match StoredRepository::open(&self.store, self.registry.clone(), key).await? {
            Some(mut s) => {
                s.load_history().await?;
                s
            }
            None => StoredRepository::create(
                &self.store,
                Repository::with_key(self.registry.clone(), key.clone(), self.wd.algorithm()?),
            ),
        })
    }

    /// The types the checkout leaves out.
    pub fn excluded(&self) -> Result<Vec<TypeId>> {
        self.state()
            .excluded
            .iter()
            .map(|n| {
                self.registry.by_name(n).ok_or_else(|| fail(format!("excluded type {n:?} is not registered")).into())
            })
            .collect()
    }

    /// Names of types.
    pub fn type_names(&self, types: &[TypeId]) -> Vec<String> {
        types.iter().map(|t| self.registry.get(*t).map_or_else(|| t.to_string(), |i| i.name().to_owned())).collect()
    }

    /// Checks out what the document was written from; returns that commit (`None` before the
    /// first commit).
    pub async fn load_current(&self, sr: &mut Stored<'_>) -> Result<Option<Key>> {
        let state = self.state().clone();
        let Some(branch) = &state.branch else { return Ok(None) };
        let repo = sr.repository();
        let Some(b) = repo.get_branch(branch) else {
            return Err(fail(format!("the checked-out branch {branch} no longer exists"))
                .hint("check out another branch with `dsf-cli checkout --force BRANCH`")
                .into());
        };
        if b.heads.len() > 1 && !state.detached {
            return Err(fail(format!(
                "branch {} has {} divergent heads",
                self.branch_name(repo, branch),
                b.heads.len()
            ))
            .hint("merge them: `dsf-cli merge HEAD_KEY` for each head that is not yours")
            .into());
        }
        let mut how = Checkout::branch(branch.clone()).excluded_types(self.excluded()?);
        if state.detached {
            let commit =
                state.commit.as_deref().and_then(Key::from_hex).context("a detached checkout without a commit")?;
            how = how.commit(commit);
        }
        sr.checkout(how).await?;
        Ok(sr.repository().commit_head()?)
    }

    /// A branch's name (its nickname, else its key).
    pub fn branch_name(&self, repo: &Repository, key: &str) -> String {
        repo.nicknames().iter().find(|(_, k)| *k == key).map_or_else(|| key.to_owned(), |(n, _)| n.clone())
    }

    /// The root object of a commit.
    pub fn root_of(repo: &Repository, commit: Key) -> Result<Key> {
        repo.commit_info(commit)?
            .root
            .map(|r| r.key)
            .ok_or_else(|| fail(format!("commit {commit} has no root object")).into())
    }

    /// Loads the graphs of these commits' roots (not below excluded types).
    pub async fn load_commits(&self, sr: &mut Stored<'_>, commits: &[Key]) -> Result<()> {
        let roots = commits.iter().map(|c| Session::root_of(sr.repository(), *c)).collect::<Result<Vec<_>>>()?;
        sr.fetch_graphs(roots, &self.excluded()?).await?;
        Ok(())
    }

    /// Reads a document into elements (not stored): `@ref`s must name stored objects.
    pub async fn parse(&self, sr: &mut Stored<'_>, doc: Json) -> Result<Parsed> {
        let refs: Vec<Key> =
            json::references(&doc).into_iter().filter(|k| !sr.repository().elements().contains(k)).collect();
        if !refs.is_empty() {
            let present = self.store.has_blobs(refs.clone()).await?;
            let found: Vec<Key> = refs.into_iter().zip(present).filter(|(_, p)| *p).map(|(k, _)| k).collect();
            sr.fetch_graphs(found, &self.excluded()?).await?;
        }
        let repo = sr.repository();
        let alg = repo.algorithm();
        json::parse(&self.registry, alg, repo.elements(), doc).map_err(|e| {
            let unresolved = e.to_string().contains("unresolved merge conflict");
            let mut f = fail(format!("{}: {e}", crate::workdir::DOCUMENT));
            if unresolved {
                f = f.code(exit::CONFLICT).hint("resolve every conflict, then `dsf-cli merge --continue`");
            } else {
                f = f.hint(format!(
                    "fix {} (see `dsf-cli help-document` for its form); nothing was changed",
                    crate::workdir::DOCUMENT
                ));
            }
            f.into()
        })
    }

    /// Renders the graph below `root` as a document.
    pub fn render(&self, repo: &Repository, root: Key) -> Result<Json> {
        Ok(json::render(&self.registry, repo.elements(), root, &self.excluded()?)?)
    }

    /// Writes the document of a commit and records it as the checkout.
    pub fn write_checkout(&self, repo: &Repository, commit: Key) -> Result<()> {
        let doc = self.render(repo, Session::root_of(repo, commit)?)?;
        self.wd.write_document(Some(&doc))?;
        self.state_mut().commit = Some(commit.to_hex());
        self.save_state()
    }

    /// Whether the document differs from the checked-out commit: (changed, parsed document).
    pub async fn dirty(&self, sr: &mut Stored<'_>, head: Option<Key>) -> Result<(bool, Option<Parsed>)> {
        let doc = self.wd.read_document()?;
        match (doc, head) {
            (None, None) => Ok((false, None)),
            (None, Some(_)) => Ok((true, None)),
            (Some(doc), head) => {
                let parsed = self.parse(sr, doc).await?;
                let same = head.map(|h| Session::root_of(sr.repository(), h)).transpose()? == Some(parsed.root);
                Ok((!same, Some(parsed)))
            }
        }
    }

    /// Refuses to go on when the document holds uncommitted changes or a merge is in progress.
    pub async fn require_clean(&self, sr: &mut Stored<'_>, head: Option<Key>, what: &str) -> Result<()> {
        if self.state().merge.is_some() {
            return Err(fail(format!("a merge is in progress: cannot {what}"))
                .hint("finish it with `dsf-cli merge --continue`, or `dsf-cli merge --abort`")
                .into());
        }
        let (dirty, _) = self.dirty(sr, head).await.map_err(|e| {
            fail(format!("cannot {what}: {} cannot be read: {e}", crate::workdir::DOCUMENT))
                .hint("fix it, or pass --force to overwrite it")
        })?;
        if dirty {
            return Err(fail(format!("cannot {what}: {} has uncommitted changes", crate::workdir::DOCUMENT))
                .hint("commit them (`dsf-cli commit -m MESSAGE`), or pass --force to discard them")
                .into());
        }
        Ok(())
    }

    /// Resolves a revision to a commit: `HEAD`, a branch, `REMOTE/BRANCH`, a commit key or a
    /// unique prefix of one (4 hex digits at least), each optionally followed by `~N` / `^N`.
    pub fn resolve(&self, repo: &Repository, spec: &str) -> Result<Key> {
        let (base, treeish) = match spec.find(['~', '^']) {
            Some(i) => (&spec[..i], &spec[i..]),
            None => (spec, ""),
        };
        let start = self.resolve_base(repo, if base.is_empty() { "HEAD" } else { base })?;
        if treeish.is_empty() {
            return Ok(start);
        }
        repo.resolve_treeish_from(start, treeish)
            .map_err(|e| if self.state().shallow.is_empty() { e.into() } else { self.beyond_shallow(spec, e) })
    }

    /// The error of an operation that needed history a shallow copy does not have.
    pub fn beyond_shallow(&self, what: &str, e: impl std::fmt::Display) -> anyhow::Error {
        fail(format!("{what}: this copy is shallow and the history it needs is not here ({e})"))
            .hint("`dsf-cli fetch --deepen N` brings N more generations, `dsf-cli fetch --unshallow` all of them")
            .into()
    }

    fn resolve_base(&self, repo: &Repository, name: &str) -> Result<Key> {
        let single = |heads: Vec<Key>, what: String| -> Result<Key> {
            match heads.as_slice() {
                [h] => Ok(*h),
                [] => Err(fail(format!("{what} has no commits")).into()),
                hs => Err(fail(format!("{what} has {} divergent heads", hs.len()))
                    .hint(format!(
                        "name one of them by key: {}",
                        hs.iter().map(|k| k.to_hex()).collect::<Vec<_>>().join(", ")
                    ))
                    .into()),
            }
        };
        if name == "HEAD" {
            return self
                .wd
                .state
                .commit
                .as_deref()
                .and_then(Key::from_hex)
                .ok_or_else(|| fail("HEAD: nothing is committed yet").into());
        }
        if let Some(b) = repo.get_branch(name) {
            return single(b.heads.clone(), format!("branch {name}"));
        }
        if let Some((remote, branch)) = name.split_once('/')
            && self.wd.config.remotes.contains_key(remote)
        {
            let heads = self.wd.remote_heads(remote)?.heads(branch).ok_or_else(|| {
                fail(format!("remote {remote} has no branch {branch:?} (as of the last fetch)"))
                    .hint(format!("`dsf-cli fetch {remote}` updates what is known of it"))
            })?;
            return single(heads, format!("{remote}/{branch}"));
        }
        if name.len() >= 4 && name.chars().all(|c| c.is_ascii_hexdigit()) {
            let upper = name.to_ascii_uppercase();
            let found: Vec<Key> = repo.commits().map(|c| c.key).filter(|k| k.to_hex().starts_with(&upper)).collect();
            return match found.as_slice() {
                [k] => Ok(*k),
                [] => Err(fail(format!("no commit {name} in this repository")).into()),
                _ => Err(fail(format!("{name} is ambiguous: {} commits start with it", found.len()))
                    .hint("give more digits")
                    .into()),
            };
        }
        Err(fail(format!("{name:?} is neither a branch, a remote branch nor a commit"))
            .hint("`dsf-cli branch` lists branches, `dsf-cli log --all` lists commits")
            .into())
    }
}
