//! Persistence of repositories in a store.
