//! A model test: random operation sequences against the store and against a `BTreeMap` model
//! of the storage contract, with reopen steps. Every outcome must agree: the same values, the
//! same rows, and the same refusals (an invalid request is [`StoreError::Invalid`] in both).

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use bytes::Bytes;
use dsf::store::{
    COMMIT_ATTRIBUTES, IndexStore, KvStore, Predicate, Row, StoreError, StoreResult, check_attributes,
    check_predicates, matches,
};

use crate::fixtures::Fixture;

/// A small deterministic generator (xorshift64), so a failure replays from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[derive(Debug, Clone)]
struct ModelRow {
    value: Bytes,
    attributes: BTreeMap<String, Vec<u8>>,
}

/// The reference semantics of [`KvStore`] and [`IndexStore`], written from the contract's
/// documentation and its shared checks.
#[derive(Default)]
struct Model {
    rows: BTreeMap<Vec<u8>, ModelRow>,
}

impl Model {
    fn indexed() -> Vec<String> {
        COMMIT_ATTRIBUTES.iter().map(|s| s.to_string()).collect()
    }

    fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.rows.get(key).map(|r| r.value.clone())
    }

    fn put(&mut self, key: Vec<u8>, value: Bytes) {
        self.rows.insert(key, ModelRow { value, attributes: BTreeMap::new() });
    }

    /// A batch that fails validation writes nothing.
    fn batch_put_rows(&mut self, rows: Vec<Row>) -> StoreResult<()> {
        let indexed = Model::indexed();
        rows.iter().try_for_each(|r| check_attributes(&indexed, r.attributes.keys()))?;
        let mut written = HashSet::new();
        for row in &rows {
            if row.value.is_some() {
                written.insert(&row.key);
            } else if !self.rows.contains_key(&row.key) && !written.contains(&row.key) {
                return Err(StoreError::Invalid("attribute-only update of a row that does not exist".into()));
            }
        }
        for row in rows {
            match row.value {
                Some(value) => {
                    self.rows.insert(row.key, ModelRow { value, attributes: row.attributes });
                }
                None => self.rows.get_mut(&row.key).expect("checked above").attributes.extend(row.attributes),
            }
        }
        Ok(())
    }

    fn query(&self, predicates: &[Predicate]) -> StoreResult<Vec<Row>> {
        check_predicates(&Model::indexed(), predicates)?;
        Ok(self
            .rows
            .iter()
            .filter(|(_, r)| matches(&r.attributes, predicates))
            .map(|(k, r)| Row { key: k.clone(), value: Some(r.value.clone()), attributes: r.attributes.clone() })
            .collect())
    }
}

fn same_outcome<T: PartialEq + fmt::Debug>(ctx: &str, what: &str, ours: StoreResult<T>, model: StoreResult<T>) {
    match (ours, model) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{ctx}: {what}"),
        (Err(StoreError::Invalid(_)), Err(StoreError::Invalid(_))) => {}
        (a, b) => panic!("{ctx}: {what}: the store gives {a:?} but the model {b:?}"),
    }
}

/// 400 random puts, removes, row puts, attribute updates, batches, gets, queries (refused ones
/// included) and reopens agree with the model; at the end every `(attribute, value)` selects the
/// same rows.
pub async fn random_operations<F: Fixture>(mut f: F) {
    let seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut rng = Rng(seed);
    let mut model = Model::default();
    let keys: [&[u8]; 6] = [b"k0", b"k1", b"k2", b"k3", b"\x00", b"\xff\x01"];
    // Two indexed names, then one the contract refuses and one that is not indexed.
    let names = ["branch_name", "keyword", "value", "unindexed"];
    let values: [&[u8]; 3] = [b"", b"a", b"\xff"];
    let (mut found, mut refused) = (0, 0);
    let attributes = |rng: &mut Rng, allow_bad: bool| -> BTreeMap<String, Vec<u8>> {
        let good = if allow_bad && rng.below(10) == 0 { names.len() } else { 2 };
        (0..rng.below(4)).map(|_| (names[rng.below(good)].to_string(), rng.pick(&values).to_vec())).collect()
    };
    for step in 0..400 {
        let ctx = format!("seed {seed:#x}, step {step}");
        let key = rng.pick(&keys).to_vec();
        match rng.below(10) {
            0 => {
                let value = if step % 4 == 0 { Bytes::new() } else { Bytes::from(format!("v{step}")) };
                let ours = f.store().put(key.clone(), value.clone()).await;
                model.put(key, value);
                same_outcome(&ctx, "put", ours, Ok(()));
            }
            1 => {
                let ours = f.store().remove(key.clone()).await;
                model.rows.remove(&key);
                same_outcome(&ctx, "remove", ours, Ok(()));
            }
            2 | 3 => {
                let row =
                    Row { key, value: Some(Bytes::from(format!("r{step}"))), attributes: attributes(&mut rng, true) };
                let ours = f.store().put_row(row.clone()).await;
                same_outcome(&ctx, "put_row", ours, model.batch_put_rows(vec![row]));
            }
            4 => {
                let attrs = attributes(&mut rng, true);
                let ours = f.store().update_index(key.clone(), attrs.clone()).await;
                let theirs = model.batch_put_rows(vec![Row { key, value: None, attributes: attrs }]);
                same_outcome(&ctx, "update_index", ours, theirs);
            }
            5 => {
                // Attribute-only updates of existing rows, and of missing ones now and then (the
                // whole batch is then refused and writes nothing).
                let rows: Vec<Row> = (0..rng.below(5))
                    .map(|i| {
                        let k = keys[rng.below(keys.len())];
                        let present = model.rows.contains_key(k);
                        let value = if (present || rng.below(8) == 0) && rng.below(2) == 0 {
                            None
                        } else {
                            Some(Bytes::from(format!("b{step}.{i}")))
                        };
                        Row { key: k.to_vec(), value, attributes: attributes(&mut rng, false) }
                    })
                    .collect();
                let ours = f.store().batch_put_rows(rows.clone()).await;
                same_outcome(&ctx, "batch_put_rows", ours, model.batch_put_rows(rows));
            }
            6 | 7 => {
                let predicates: Vec<Predicate> = (0..1 + rng.below(2))
                    .map(|_| {
                        let known = if rng.below(12) == 0 { names.len() } else { 2 };
                        let name = names[rng.below(known)].to_string();
                        if rng.below(3) == 0 {
                            Predicate::Gt(name, rng.pick(&values).to_vec())
                        } else {
                            // Mostly non-empty: an equality on the empty value alone is refused.
                            Predicate::Eq(name, rng.pick::<&[u8]>(&[b"a", b"\xff", b"a", b"\xff", b""]).to_vec())
                        }
                    })
                    .collect();
                let expected = model.query(&predicates);
                match &expected {
                    Ok(rows) => found += rows.len(),
                    Err(_) => refused += 1,
                }
                let ours = f.store().query(predicates.clone()).await;
                same_outcome(&ctx, &format!("query {predicates:?}"), ours, expected);
            }
            8 => {
                let ks: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
                let want: Vec<Option<Bytes>> = ks.iter().map(|k| model.get(k)).collect();
                same_outcome(&ctx, "batch_get", f.store().batch_get(ks.clone()).await, Ok(want));
                let want: Vec<bool> = ks.iter().map(|k| model.rows.contains_key(k)).collect();
                same_outcome(&ctx, "batch_has_key", f.store().batch_has_key(ks).await, Ok(want));
            }
            _ => {
                if rng.below(3) == 0 {
                    f.reopen().await;
                }
                same_outcome(&ctx, "get", f.store().get(key.clone()).await, Ok(model.get(&key)));
                same_outcome(&ctx, "has_key", f.store().has_key(key.clone()).await, Ok(model.rows.contains_key(&key)));
            }
        }
    }
    assert!(found > 20 && refused > 5, "the sequence is too tame: {found} rows found, {refused} queries refused");
    f.reopen().await;
    for name in &names[..2] {
        for value in values {
            let predicates = vec![Predicate::Eq(name.to_string(), value.to_vec())];
            let ours = f.store().query(predicates.clone()).await;
            same_outcome("after the last reopen", &format!("{predicates:?}"), ours, model.query(&predicates));
        }
    }
    let ks: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
    let want: Vec<bool> = ks.iter().map(|k| model.rows.contains_key(k)).collect();
    same_outcome("after the last reopen", "batch_has_key", f.store().batch_has_key(ks).await, Ok(want));
}
