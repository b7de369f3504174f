//! The working copy: a folder with the document (`root.json`) and a hidden `.dsf` folder that
//! holds the local store, the configuration, the state of the checkout and what is known of
//! each remote.
//!
//! ```text
//! <dir>/root.json              the checked-out graph as JSON (dsf::json)
//! <dir>/.dsf/config.toml       repository key, hash algorithm, remotes
//! <dir>/.dsf/state.json        the checked-out branch or commit, excluded types, merge in progress
//! <dir>/.dsf/store/            the local RocksDB store
//! <dir>/.dsf/types/*.pb        registered descriptor sets
//! <dir>/.dsf/remotes/<name>.json   the branches each remote held at the last exchange
//! ```
//!
//! Every file is replaced atomically (written beside, then renamed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dsf::{Branch, HashAlgorithm, Key, Registry};
use dsf_store_backends::rocks::RocksStore;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::ui::fail;

/// The document's file name.
pub const DOCUMENT: &str = "root.json";
/// The hidden folder.
pub const DOT: &str = ".dsf";

/// `.dsf/config.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// The repository key (the same on every copy of the repository).
    pub repository: String,
    /// `sha1` or `blake3`.
    pub algorithm: String,
    /// Remotes by name.
    #[serde(default)]
    pub remotes: BTreeMap<String, RemoteConfig>,
}

/// One remote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteConfig {
    /// `amqp://…/sysname`, `grpc://host:port` or a path.
    pub url: String,
}

/// `.dsf/state.json`: what the document was written from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// The current branch key (also set for a detached checkout: the branch it came from).
    pub branch: Option<String>,
    /// The commit the document was written from.
    pub commit: Option<String>,
    /// Set for a detached (read-only) checkout.
    #[serde(default)]
    pub detached: bool,
    /// Types whose objects are written as `@ref` (full names).
    #[serde(default)]
    pub excluded: Vec<String>,
    /// A merge waiting for its conflicts to be resolved.
    pub merge: Option<MergeState>,
    /// The shallow boundary: commits here whose parents are not (a clone with `--depth`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shallow: Vec<String>,
}

/// A merge in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MergeState {
    /// The commit being merged in.
    pub theirs: String,
    /// What was named on the command line (branch, remote branch or commit).
    pub name: String,
    /// The policy (`manual` when conflicts are left to the user).
    pub policy: String,
    /// The conflicts the merge found, by path.
    pub conflicts: Vec<String>,
}

/// What a remote held at the last exchange.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RemoteHeads {
    /// Branch key → head commits (hex).
    pub branches: BTreeMap<String, Vec<String>>,
    /// Branch name → branch key.
    pub nicknames: BTreeMap<String, String>,
}

impl RemoteHeads {
    /// From branches and names as a remote reported them.
    pub fn from_branches(branches: &[Branch], nicknames: &BTreeMap<String, String>) -> RemoteHeads {
        RemoteHeads {
            branches: branches.iter().map(|b| (b.key.clone(), b.heads.iter().map(Key::to_hex).collect())).collect(),
            nicknames: nicknames.clone(),
        }
    }

    /// The heads of a branch given by name or key.
    pub fn heads(&self, branch: &str) -> Option<Vec<Key>> {
        let key = self.nicknames.get(branch).map(String::as_str).unwrap_or(branch);
        self.branches.get(key).map(|h| h.iter().filter_map(|k| Key::from_hex(k)).collect())
    }

    /// Every head.
    pub fn all(&self) -> Vec<Key> {
        self.branches.values().flatten().filter_map(|k| Key::from_hex(k)).collect()
    }

    /// The name of a branch key, or the key.
    pub fn name_of<'a>(&'a self, key: &'a str) -> &'a str {
        self.nicknames.iter().find(|(_, k)| *k == key).map(|(n, _)| n.as_str()).unwrap_or(key)
    }
}

/// An opened working copy.
#[derive(Debug)]
pub struct Workdir {
    /// The working copy folder.
    pub dir: PathBuf,
    /// Its configuration.
    pub config: Config,
    /// Its checkout state.
    pub state: State,
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

impl Workdir {
    /// Finds the working copy that contains `start` (it or a parent holds `.dsf`).
    pub fn find(start: &Path) -> Result<Workdir> {
        let start = std::path::absolute(start).with_context(|| format!("bad path {}", start.display()))?;
        let mut at = Some(start.as_path());
        while let Some(dir) = at {
            if dir.join(DOT).join("config.toml").is_file() {
                return Workdir::open(dir);
            }
            at = dir.parent();
        }
        Err(fail(format!("{} is not in a dsf working copy", start.display()))
            .hint("run `dsf-cli init` to make one, or `dsf-cli clone URL KEY DIR` to copy one")
            .into())
    }

    /// Opens the working copy at `dir`.
    pub fn open(dir: &Path) -> Result<Workdir> {
        let config_path = dir.join(DOT).join("config.toml");
        let text =
            std::fs::read_to_string(&config_path).with_context(|| format!("cannot read {}", config_path.display()))?;
        let config: Config =
            toml::from_str(&text).with_context(|| format!("{} is not a valid configuration", config_path.display()))?;
        let state_path = dir.join(DOT).join("state.json");
        let state = match std::fs::read(&state_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a valid state file", state_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", state_path.display())),
        };
        Ok(Workdir { dir: dir.to_path_buf(), config, state })
    }

    /// Makes a new working copy in `dir` (which may exist, but must not hold one).
    pub fn create(dir: &Path, repository: &str, algorithm: HashAlgorithm) -> Result<Workdir> {
        if dir.join(DOT).exists() {
            return Err(fail(format!("{} already holds a dsf working copy", dir.display()))
                .hint("pick another folder, or work in this one")
                .into());
        }
        for sub in ["store", "types", "remotes"] {
            std::fs::create_dir_all(dir.join(DOT).join(sub))
                .with_context(|| format!("cannot create {}", dir.join(DOT).join(sub).display()))?;
        }
        let wd = Workdir {
            dir: std::path::absolute(dir)?,
            config: Config {
                repository: repository.to_owned(),
                algorithm: algorithm.name().to_owned(),
                remotes: BTreeMap::new(),
            },
            state: State::default(),
        };
        wd.save_config()?;
        wd.save_state()?;
        Ok(wd)
    }

    fn dot(&self) -> PathBuf {
        self.dir.join(DOT)
    }

    /// The hash algorithm.
    pub fn algorithm(&self) -> Result<HashAlgorithm> {
        self.config.algorithm.parse().map_err(|e: String| fail(format!(".dsf/config.toml: {e}")).into())
    }

    /// Writes `.dsf/config.toml`.
    pub fn save_config(&self) -> Result<()> {
        let text = toml::to_string(&self.config).context("cannot encode the configuration")?;
        write_atomically(&self.dot().join("config.toml"), text.as_bytes())
    }

    /// Writes `.dsf/state.json`.
    pub fn save_state(&self) -> Result<()> {
        self.write_state(&self.state)
    }

    /// Writes `state` as `.dsf/state.json`.
    pub fn write_state(&self, state: &State) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(state).context("cannot encode the state")?;
        write_atomically(&self.dot().join("state.json"), &bytes)
    }

    /// Opens the local store.
    pub fn store(&self) -> Result<RocksStore> {
        RocksStore::open(self.dot().join("store")).map_err(|e| {
            fail(format!("cannot open the local store: {e}"))
                .hint("another dsf-cli may be working in this copy: wait for it to finish")
                .into()
        })
    }

    /// The type registry: the built-in types and every registered descriptor set.
    pub fn registry(&self) -> Result<Registry> {
        let sets = self.descriptor_sets()?;
        let mut all: Vec<&[u8]> = vec![dsf::proto::DESCRIPTOR_SET];
        all.extend(sets.iter().map(|(_, b)| b.as_slice()));
        Registry::from_descriptor_sets(&all).map_err(|e| fail(format!("the registered types are unusable: {e}")).into())
    }

    /// The registered descriptor sets: (file name, bytes), in name order.
    pub fn descriptor_sets(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let dir = self.dot().join("types");
        let mut out = Vec::new();
        if !dir.is_dir() {
            return Ok(out);
        }
        for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "pb") {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                out.push((name, std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Registers a descriptor set under `name`.
    pub fn add_descriptor_set(&self, name: &str, bytes: &[u8]) -> Result<()> {
        std::fs::create_dir_all(self.dot().join("types"))?;
        write_atomically(&self.dot().join("types").join(name), bytes)
    }

    /// The document's path.
    pub fn document_path(&self) -> PathBuf {
        self.dir.join(DOCUMENT)
    }

    /// Reads the document; `None` if there is none.
    pub fn read_document(&self) -> Result<Option<Json>> {
        let path = self.document_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        parse_json(&bytes).map(Some).map_err(|e| {
            fail(format!("{} is not valid JSON: {e}", path.display()))
                .hint("fix the file in an editor (`dsf-cli checkout --force` restores it from the last commit)")
                .into()
        })
    }

    /// Replaces the document (`None`: removes it).
    pub fn write_document(&self, doc: Option<&Json>) -> Result<()> {
        let path = self.document_path();
        match doc {
            Some(doc) => {
                let mut bytes = serde_json::to_vec_pretty(doc).context("cannot encode the document")?;
                bytes.push(b'\n');
                write_atomically(&path, &bytes)
            }
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("cannot remove {}", path.display()))
                }
                _ => Ok(()),
            },
        }
    }

    fn remote_path(&self, name: &str) -> PathBuf {
        self.dot().join("remotes").join(format!("{name}.json"))
    }

    /// What a remote held at the last exchange (empty if never contacted).
    pub fn remote_heads(&self, name: &str) -> Result<RemoteHeads> {
        match std::fs::read(self.remote_path(name)) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| format!("bad {}", self.remote_path(name).display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RemoteHeads::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Records what a remote holds.
    pub fn save_remote_heads(&self, name: &str, heads: &RemoteHeads) -> Result<()> {
        std::fs::create_dir_all(self.dot().join("remotes"))?;
        write_atomically(&self.remote_path(name), &serde_json::to_vec_pretty(heads)?)
    }

    /// Forgets a remote's heads.
    pub fn remove_remote_heads(&self, name: &str) -> Result<()> {
        match std::fs::remove_file(self.remote_path(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Every remote's recorded heads.
    pub fn all_remote_heads(&self) -> Result<Vec<(String, RemoteHeads)>> {
        self.config.remotes.keys().map(|n| Ok((n.clone(), self.remote_heads(n)?))).collect()
    }
}

/// Parses JSON of any nesting depth (an object graph may be deep).
pub fn parse_json(bytes: &[u8]) -> std::result::Result<Json, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let v = Json::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}
