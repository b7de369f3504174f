//! Bootstrap objects a datastore creates at start (spec §4.4), each only if no repository with
//! its key exists yet: ION's association predicates (Terminology repositories with fixed keys)
//! and the ROOT identity resource.
//!
//! Several containers may start at once on one store, so the bootstrap commits are
//! deterministic: the same objects, the fixed date [`PRELOAD_DATE`] and a branch key derived
//! from the repository key ([`preload_branch`]). Every container therefore writes the same
//! elements and the same heads record; one compare-and-set wins, and a loser finds the heads it
//! would have written (already in its history), so each bootstrap repository ends with one
//! branch, `master`, and one head, whatever the number of containers.

use std::collections::BTreeMap;

use dsf::proto::net::ooici::core::association::Terminology;
use dsf::proto::net::ooici::services::coi::OoiResource;
use dsf::proto::net::ooici::services::coi::ooi_resource::LifeCycleState;
use dsf::store::Store;
use dsf::{Branch, HashAlgorithm, Key, MASTER_BRANCH, Repository};
use sha1::Digest as _;

use super::{Datastore, Received};
use crate::error::ServiceError;

/// ION's predicates: (repository key, word).
pub const PREDICATES: [(&str, &str); 6] = [
    ("C22A454D-389E-4BA6-88BC-CEDD93B5C87E", "has_a"),
    ("60029609-FD0C-4DE3-8E52-9F5DDAD9A9A8", "is_a"),
    ("F30A45F8-331D-4D44-AECC-746DA81B012F", "type_of"),
    ("734CE3E6-90ED-4642-AD46-7C2E67BDA798", "owned_by"),
    ("ffe5c79e-58b5-493b-b409-0280c86ba0c7", "has_life_cycle_state"),
    ("eed4b68d-58b5-493b-b409-1291d97cb1d8", "has_role"),
];

/// The ROOT identity's repository key.
pub const ROOT_IDENTITY: &str = "E15CADEA-4605-4AFD-AF80-8FC3BC54D2A3";

/// The date of every bootstrap commit (2011-01-01T00:00:00Z), so that containers preloading
/// at different times make the same commits.
pub const PRELOAD_DATE: f64 = 1_293_840_000.0;

/// The comment of every bootstrap commit.
pub const PRELOAD_COMMENT: &str = "preloaded";

/// The key of a bootstrap repository's `master` branch: eight uppercase hex digits (the form of
/// every branch key) of the SHA-1 of `dsf preload ` and the repository key.
pub fn preload_branch(repository_key: &str) -> String {
    let digest = sha1::Sha1::digest(format!("dsf preload {repository_key}").as_bytes());
    digest[..4].iter().map(|b| format!("{b:02X}")).collect()
}

/// A bootstrap repository as every container makes it: its key, the branch and nickname of its
/// one commit, and its elements (objects, then the commit).
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The state a preload pushes into the store.
    pub received: Received,
    /// The commit's key.
    pub commit: Key,
}

/// The bootstrap repositories, in ION's order: the predicates, then the ROOT identity.
pub fn bootstrap(registry: &dsf::Registry) -> Result<Vec<Bootstrap>, ServiceError> {
    let mut all = Vec::with_capacity(PREDICATES.len() + 1);
    for (key, word) in PREDICATES {
        let term = Terminology { word: Some(word.to_owned()) };
        all.push(one(registry, key, |repo| repo.create(&term))?);
    }
    let root = OoiResource {
        name: Some("ROOT".into()),
        identity: Some(ROOT_IDENTITY.into()),
        object_type: None,
        lcs: Some(LifeCycleState::Active as i32),
        resource_object: None,
        description: Some("the root identity".into()),
        resource_type: None,
    };
    all.push(one(registry, ROOT_IDENTITY, |repo| repo.create(&root))?);
    Ok(all)
}

fn one(
    registry: &dsf::Registry,
    key: &str,
    make: impl FnOnce(&mut Repository) -> dsf::Result<dsf::ObjectId>,
) -> Result<Bootstrap, ServiceError> {
    let mut repo = Repository::with_key(registry.clone(), key, HashAlgorithm::Sha1);
    let root = make(&mut repo)?;
    repo.set_root(root)?;
    let commit = repo.commit_at(PRELOAD_COMMENT, PRELOAD_DATE)?;
    let branch = preload_branch(key);
    let received = Received {
        repository_key: key.to_owned(),
        branches: vec![Branch { key: branch.clone(), heads: vec![commit] }],
        nicknames: BTreeMap::from([(MASTER_BRANCH.to_owned(), branch)]),
        elements: repo.elements().iter().cloned().collect(),
    };
    Ok(Bootstrap { received, commit })
}

impl<S: Store> Datastore<S> {
    /// Creates the bootstrap repositories that do not exist yet; returns how many it created.
    /// A repository another container created meanwhile is received as a push of the same
    /// commit: its heads do not move.
    pub async fn preload(&self) -> Result<usize, ServiceError> {
        let mut created = 0;
        for b in bootstrap(self.registry())? {
            if self.heads(&b.received.repository_key).await?.is_some() {
                continue;
            }
            self.receive(b.received).await?;
            created += 1;
        }
        Ok(created)
    }
}
