//! The conformance suite of the storage contract, stamped once per backend.
//!
//! Every backend (memory, RocksDB, Cassandra) runs the same tests: ION's `IStore` and
//! `IndexStore` behaviours (spec §7.7), blobs, compare-and-set of heads with exactly one winner
//! among concurrent writers, repositories that survive reopening, and a model test of random
//! operations against a `BTreeMap`, stored-only attributes, and maintenance (paged listing, idempotent and conditional
//! deletion, freshening). The Cassandra tests need the test server
//! (`scripts/cassandra start`); without it they fail, they are never skipped.

mod crash;
mod fixtures;
mod kv;
mod maint;
mod model;
mod repositories;

/// Stamps every conformance test for one backend: `$name` is the module, `$fixture` an
/// expression that makes a fresh [`Fixture`] (a store of its own).
macro_rules! conformance {
    ($name:ident, $fixture:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            conformance!(@tests $fixture;
                kv::batch_operations,
                kv::get_none,
                kv::put_get_remove,
                kv::has_key,
                kv::query_attributes,
                kv::query_single,
                kv::query_multiple,
                kv::query_no_results,
                kv::query_greater_and_eq,
                kv::query_greater_and_eq_blank,
                kv::query_needs_equality,
                kv::update_index,
                kv::update_index_value_error,
                kv::unindexed_attribute_error,
                kv::stored_only_attributes,
                kv::blobs,
                kv::heads_compare_and_set,
                kv::heads_one_winner,
                kv::save_batch,
                repositories::commit_reopen_checkout,
                repositories::lazy_fetch_and_exclusions,
                repositories::concurrent_writers_keep_every_head,
                repositories::commit_rows_are_indexed,
                repositories::rows_without_generations,
                model::random_operations,
                maint::listing,
                maint::deletion,
                maint::conditional_deletion,
            );
        }
    };
    (@tests $fixture:expr; $($module:ident :: $test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let fixture = $fixture.await;
                $module::$test(fixture).await;
            }
        )*
    };
}

conformance!(memory, fixtures::memory());
conformance!(rocksdb, fixtures::rocksdb());
conformance!(cassandra, fixtures::cassandra());
