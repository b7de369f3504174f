//! A model test: random operation sequences against the store and against a `BTreeMap`,
//! with reopen steps.

use std::collections::BTreeMap;

use bytes::Bytes;
use dsf::store::{IndexStore, KvStore, Predicate, Row};

use crate::fixtures::Fixture;

/// A small deterministic generator (xorshift), so a failure replays from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A query answer as compared: key, value, attributes.
type Answer = Vec<(Vec<u8>, Option<Bytes>, BTreeMap<String, Vec<u8>>)>;

#[derive(Debug, Clone, PartialEq)]
struct ModelRow {
    value: Bytes,
    attributes: BTreeMap<String, Vec<u8>>,
}

/// 400 random puts, batch puts, attribute updates, removes, gets, queries and reopens agree
/// with a `BTreeMap` model.
pub async fn random_operations<F: Fixture>(mut f: F) {
    let seed = 0x5eed_d5f0_u64;
    let mut rng = Rng(seed);
    let mut model: BTreeMap<Vec<u8>, ModelRow> = BTreeMap::new();
    let key = |rng: &mut Rng| format!("k{}", rng.below(12)).into_bytes();
    let attr = |rng: &mut Rng| -> BTreeMap<String, Vec<u8>> {
        let mut a = BTreeMap::new();
        a.insert("repository_key".to_owned(), format!("r{}", rng.below(3)).into_bytes());
        if rng.below(2) == 0 {
            a.insert("keyword".to_owned(), format!("{}", rng.below(4)).into_bytes());
        }
        a
    };
    for step in 0..400 {
        let ctx = format!("seed {seed:#x}, step {step}");
        match rng.below(8) {
            0 | 1 => {
                let (k, a) = (key(&mut rng), attr(&mut rng));
                let v = Bytes::from(format!("v{step}"));
                f.store().put_row(Row { key: k.clone(), value: Some(v.clone()), attributes: a.clone() }).await.unwrap();
                model.insert(k, ModelRow { value: v, attributes: a });
            }
            2 => {
                let rows: Vec<Row> = (0..3)
                    .map(|i| Row {
                        key: key(&mut rng),
                        value: Some(Bytes::from(format!("b{step}.{i}"))),
                        attributes: attr(&mut rng),
                    })
                    .collect();
                f.store().batch_put_rows(rows.clone()).await.unwrap();
                for r in rows {
                    model.insert(r.key, ModelRow { value: r.value.unwrap(), attributes: r.attributes });
                }
            }
            3 => {
                let k = key(&mut rng);
                let a = BTreeMap::from([("keyword".to_owned(), format!("{}", rng.below(4)).into_bytes())]);
                let result = f.store().update_index(k.clone(), a.clone()).await;
                match model.get_mut(&k) {
                    Some(row) => {
                        result.unwrap_or_else(|e| panic!("{ctx}: update of an existing row: {e}"));
                        row.attributes.extend(a);
                    }
                    None => assert!(result.is_err(), "{ctx}: update of a missing row must fail"),
                }
            }
            4 => {
                let k = key(&mut rng);
                f.store().remove(k.clone()).await.unwrap();
                model.remove(&k);
            }
            5 => {
                let ks: Vec<Vec<u8>> = (0..4).map(|_| key(&mut rng)).collect();
                let got = f.store().batch_get(ks.clone()).await.unwrap();
                let want: Vec<Option<Bytes>> = ks.iter().map(|k| model.get(k).map(|r| r.value.clone())).collect();
                assert_eq!(got, want, "{ctx}");
            }
            6 => {
                let mut predicates =
                    vec![Predicate::Eq("repository_key".into(), format!("r{}", rng.below(3)).into_bytes())];
                if rng.below(2) == 0 {
                    predicates.push(Predicate::Gt("keyword".into(), format!("{}", rng.below(3)).into_bytes()));
                }
                let got: Answer = f
                    .store()
                    .query(predicates.clone())
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.key, r.value, r.attributes))
                    .collect();
                let want: Answer = model
                    .iter()
                    .filter(|(_, r)| dsf::store::matches(&r.attributes, &predicates))
                    .map(|(k, r)| (k.clone(), Some(r.value.clone()), r.attributes.clone()))
                    .collect();
                assert_eq!(got, want, "{ctx}: {predicates:?}");
            }
            _ => f.reopen().await,
        }
    }
    f.reopen().await;
    let all: Vec<Vec<u8>> = (0..12).map(|i| format!("k{i}").into_bytes()).collect();
    let got = f.store().batch_has_key(all.clone()).await.unwrap();
    let want: Vec<bool> = all.iter().map(|k| model.contains_key(k)).collect();
    assert_eq!(got, want, "after the last reopen");
}
