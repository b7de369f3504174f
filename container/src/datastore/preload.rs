//! Bootstrap objects a datastore creates at start (spec §4.4), each only if no repository with
//! its key exists yet: ION's association predicates (Terminology repositories with fixed keys)
//! and the ROOT identity resource. Several instances may preload at once: the heads
//! compare-and-set keeps one result.

use dsf::proto::net::ooici::core::association::Terminology;
use dsf::proto::net::ooici::services::coi::OoiResource;
use dsf::proto::net::ooici::services::coi::ooi_resource::LifeCycleState;
use dsf::store::Store;
use dsf::store::persist::StoredRepository;
use dsf::{HashAlgorithm, Repository};

use super::Datastore;
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

impl<S: Store> Datastore<S> {
    /// Creates the bootstrap repositories that do not exist yet; returns how many it created.
    pub async fn preload(&self) -> Result<usize, ServiceError> {
        let mut created = 0;
        for (key, word) in PREDICATES {
            let term = Terminology { word: Some(word.to_owned()) };
            created += usize::from(self.create_if_missing(key, |repo| repo.create(&term)).await?);
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
        created += usize::from(self.create_if_missing(ROOT_IDENTITY, |repo| repo.create(&root)).await?);
        Ok(created)
    }

    async fn create_if_missing(
        &self,
        key: &str,
        make: impl FnOnce(&mut Repository) -> dsf::Result<dsf::ObjectId>,
    ) -> Result<bool, ServiceError> {
        if self.heads(key).await?.is_some() {
            return Ok(false);
        }
        let mut repo = Repository::with_key(self.registry().clone(), key, HashAlgorithm::Sha1);
        let root = make(&mut repo)?;
        repo.set_root(root)?;
        let mut stored = StoredRepository::create(self.store(), repo);
        stored.commit("preloaded").await?;
        Ok(true)
    }
}
