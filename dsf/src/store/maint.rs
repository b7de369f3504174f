//! Maintenance of a store: paged listing, deletion and freshening, for `fsck` and `gc`
//! (see [`super::walk`]).
//!
//! Listing pages through a table in the backend's own order; a page says where the next one
//! starts (an opaque cursor) or that it was the last. A listing that runs while others write is
//! not a snapshot: an entry written during it may or may not appear, an entry present from its
//! start to its end appears once.
//!
//! Stores that record write times ([`Maintenance::write_times`], Cassandra) report them with
//! each listed entry and make deletions conditional: a deletion with `written_before: Some(t)`
//! removes an entry only if it was last written at or before `t`, atomically with respect to
//! writers, so an entry written again after `t` survives it. Stores without write times
//! (memory, RocksDB) delete unconditionally: they are maintained with no writer running (a
//! RocksDB database is opened by one process at a time).

use std::future::Future;

use super::StoreResult;
use crate::key::Key;

/// One listed entry: its key and, if the store records write times, when it was last written
/// (microseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<K> {
    /// The key.
    pub key: K,
    /// The last write time, microseconds since the Unix epoch (`None`: not recorded).
    pub written: Option<i64>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The entries of this page (at most the requested number, maybe fewer before the end).
    pub items: Vec<T>,
    /// Where the next page starts; `None`: this was the last page.
    pub next: Option<Vec<u8>>,
}

/// Listing, deletion and freshening: what `fsck` and `gc` need beyond the rest of the contract.
pub trait Maintenance: Send + Sync {
    /// Whether the store records write times: then listings report them and deletions honour
    /// `written_before`.
    fn write_times(&self) -> bool;

    /// A page of blob keys, starting at `cursor` (`None`: the first page).
    fn list_blobs(
        &self,
        cursor: Option<Vec<u8>>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Page<Listed<Key>>>> + Send;

    /// A page of row keys (commit rows and any other rows of the index store).
    fn list_rows(
        &self,
        cursor: Option<Vec<u8>>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Page<Listed<Vec<u8>>>>> + Send;

    /// A page of repositories, those that have a heads record.
    fn list_repositories(
        &self,
        cursor: Option<Vec<u8>>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Page<String>>> + Send;

    /// Deletes blobs; an absent key is fine (deletion is idempotent). With `written_before`
    /// and a store that records write times, a blob written after that time survives.
    /// Blobs are otherwise immutable: only garbage collection deletes them.
    fn delete_blobs(&self, keys: Vec<Key>, written_before: Option<i64>)
    -> impl Future<Output = StoreResult<()>> + Send;

    /// Deletes rows and their index entries, like [`Maintenance::delete_blobs`].
    fn delete_rows(
        &self,
        keys: Vec<Vec<u8>>,
        written_before: Option<i64>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Writes every present blob of `keys` again, unchanged, so its write time is now; returns
    /// whether each was present, in order. A store without write times only reports presence.
    fn freshen_blobs(&self, keys: Vec<Key>) -> impl Future<Output = StoreResult<Vec<bool>>> + Send;

    /// Writes every present row of `keys` again (value and attributes unchanged), like
    /// [`Maintenance::freshen_blobs`].
    fn freshen_rows(&self, keys: Vec<Vec<u8>>) -> impl Future<Output = StoreResult<Vec<bool>>> + Send;
}

/// How many entries one listing call asks for.
pub const PAGE: usize = 1000;

/// Every entry of a listing, page by page (`list` lists one page after a cursor).
async fn all_pages<T, F, Fut>(mut list: F) -> StoreResult<Vec<T>>
where
    F: FnMut(Option<Vec<u8>>) -> Fut,
    Fut: Future<Output = StoreResult<Page<T>>>,
{
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = list(cursor).await?;
        out.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

/// Every blob of the store, page by page.
pub async fn all_blobs<S: Maintenance>(store: &S) -> StoreResult<Vec<Listed<Key>>> {
    all_pages(|cursor| store.list_blobs(cursor, PAGE)).await
}

/// Every row of the store, page by page.
pub async fn all_rows<S: Maintenance>(store: &S) -> StoreResult<Vec<Listed<Vec<u8>>>> {
    all_pages(|cursor| store.list_rows(cursor, PAGE)).await
}

/// Every repository of the store, page by page.
pub async fn all_repositories<S: Maintenance>(store: &S) -> StoreResult<Vec<String>> {
    all_pages(|cursor| store.list_repositories(cursor, PAGE)).await
}

/// A page of `sorted` entries after `cursor` (exclusive), for stores that list in key order:
/// the cursor is the last key of the previous page.
pub fn page_after<T: Clone>(
    sorted: impl IntoIterator<Item = (Vec<u8>, T)>,
    cursor: Option<&[u8]>,
    limit: usize,
) -> Page<T> {
    let limit = limit.max(1);
    let mut items = Vec::new();
    let mut last = None;
    let mut more = false;
    for (key, item) in sorted {
        if cursor.is_some_and(|c| key.as_slice() <= c) {
            continue;
        }
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(item);
        last = Some(key);
    }
    Page { items, next: if more { last } else { None } }
}
