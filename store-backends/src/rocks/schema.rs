//! The column families of the database and their options.

use dsf::store::{StoreError, StoreResult};
use rocksdb::{BlockBasedOptions, Cache, ColumnFamily, DBCompressionType, Options};

use super::Shared;

pub(super) const BLOBS: &str = "blobs";
pub(super) const HEADS: &str = "heads";
pub(super) const ROWS: &str = "rows";
pub(super) const INDEX: &str = "index";
pub(super) const COLUMN_FAMILIES: [&str; 4] = [BLOBS, HEADS, ROWS, INDEX];

pub(super) fn column_family_options(name: &str, cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    if name != INDEX {
        table.set_bloom_filter(10.0, false);
    }
    let mut options = Options::default();
    options.set_compression_type(DBCompressionType::Lz4);
    options.set_block_based_table_factory(&table);
    options
}

impl Shared {
    pub(super) fn cf(&self, name: &'static str) -> StoreResult<&ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| StoreError::Backend(format!("column family {name} is missing")))
    }
}
