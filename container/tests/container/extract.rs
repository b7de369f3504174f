//! Spec §7.8 DataStoreExtractDataTest: arrays stored with put_blobs, sliced by extract_data,
//! the chunks sent one-way to the client's queue.

use dsf::proto::net::ooici::cdm::syntactic::{ArrayStructure, BoundedArray, Bounds, F64Array};
use dsf::{Element, HashAlgorithm, Key, TypeId};
use dsf_container::content::link_to;
use dsf_container::datastore::extract::ArrayValues;

use crate::common::*;

fn el<T: dsf::proto::Identified>(msg: &T, children: Vec<Key>) -> Element {
    Element::new(HashAlgorithm::Sha1, TypeId::of::<T>(), msg.encode_to_vec(), children)
}

fn bounds(origin: &[i64], size: &[u64], stride: &[u64]) -> Vec<Bounds> {
    origin
        .iter()
        .zip(size)
        .zip(stride)
        .map(|((o, s), t)| Bounds { origin: Some(*o), size: Some(*s), stride: Some(*t) })
        .collect()
}

/// An ArrayStructure of f64 arrays, each (origin, size) box holding `values(box index, local
/// flat index)`; returns its elements and the structure's key.
fn structure(boxes: &[(Vec<i64>, Vec<u64>)], values: impl Fn(usize, u64) -> f64) -> (Vec<Element>, Key) {
    let mut elements = Vec::new();
    let mut links = Vec::new();
    for (i, (origin, size)) in boxes.iter().enumerate() {
        let n: u64 = size.iter().product();
        let array = el(&F64Array { value: (0..n).map(|j| values(i, j)).collect() }, vec![]);
        let ba = el(
            &BoundedArray { bounds: bounds(origin, size, &vec![1; size.len()]), ndarray: Some(link_to(&array)) },
            vec![array.key()],
        );
        links.push(link_to(&ba));
        elements.push(array);
        elements.push(ba);
    }
    let keys = links.iter().map(|l| Key::from_slice(&l.key).unwrap()).collect();
    let st = el(&ArrayStructure { bounded_arrays: links }, keys);
    let key = st.key();
    elements.push(st);
    (elements, key)
}

/// The extracted values, placed by each chunk's start index.
async fn extract(c: &Cluster<impl dsf::store::Store + 'static>, key: Key, b: Vec<Bounds>) -> Vec<f64> {
    let chunks = c.client.extract_data(key, b).await.unwrap();
    let mut out = Vec::new();
    for (start, e) in chunks {
        assert_eq!(start as usize, out.len(), "chunks arrive in order and contiguous");
        match ArrayValues::decode(e.ty().object_id, e.value()).unwrap() {
            ArrayValues::F64(v) => out.extend(v),
            other => panic!("chunk of type {}", other.object_id()),
        }
    }
    out
}

fn single() -> (Vec<Element>, Key) {
    structure(&[(vec![0, 0, 0], vec![15, 40, 200])], |_, j| j as f64)
}

fn multi() -> (Vec<Element>, Key) {
    let boxes: Vec<(Vec<i64>, Vec<u64>)> = (0..4).map(|k| (vec![0, 20 * k, 0, 0], vec![1, 20, 20, 20])).collect();
    structure(&boxes, |k, j| (k as u64 * 8000 + j) as f64)
}

/// ★ test_full_one_ba: all 120000 values, in order.
#[tokio::test(flavor = "multi_thread")]
async fn test_full_one_ba() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (elements, key) = single();
    c.client.put_blobs(&elements).await.unwrap();
    let v = extract(&c, key, bounds(&[0, 0, 0], &[15, 40, 200], &[1, 1, 1])).await;
    assert_eq!(v.len(), 120_000);
    assert!(v.iter().enumerate().all(|(i, x)| *x == i as f64));
}

/// ★ test_partial_one_ba: a 1×10×100 box: 1000 values at the right offsets.
#[tokio::test(flavor = "multi_thread")]
async fn test_partial_one_ba() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (elements, key) = single();
    c.client.put_blobs(&elements).await.unwrap();
    let v = extract(&c, key, bounds(&[3, 5, 50], &[1, 10, 100], &[1, 1, 1])).await;
    assert_eq!(v.len(), 1000);
    for (i, x) in v.iter().enumerate() {
        let (y, z) = (5 + i / 100, 50 + i % 100);
        assert_eq!(*x, (3 * 8000 + y * 200 + z) as f64);
    }
}

/// ★ test_stride_one_ba: stride 10 on the last dimension: 100 values, step 10.
#[tokio::test(flavor = "multi_thread")]
async fn test_stride_one_ba() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (elements, key) = single();
    c.client.put_blobs(&elements).await.unwrap();
    let v = extract(&c, key, bounds(&[0, 0, 0], &[1, 5, 200], &[1, 1, 10])).await;
    assert_eq!(v.len(), 100);
    assert_eq!(v[0], 0.0);
    assert_eq!(v[1], 10.0);
    assert_eq!(v[20], 200.0, "the next row");
}

/// test_full_multi_ba: four arrays assembled in order.
#[tokio::test(flavor = "multi_thread")]
async fn test_full_multi_ba() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (elements, key) = multi();
    c.client.put_blobs(&elements).await.unwrap();
    let v = extract(&c, key, bounds(&[0, 0, 0, 0], &[1, 80, 20, 20], &[1, 1, 1, 1])).await;
    assert_eq!(v.len(), 32_000);
    assert!(v.iter().enumerate().all(|(i, x)| *x == i as f64));
}

/// ★ test_partial_crossing_bas_multi_ba: a box across two arrays.
#[tokio::test(flavor = "multi_thread")]
async fn test_partial_crossing_bas_multi_ba() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (elements, key) = multi();
    c.client.put_blobs(&elements).await.unwrap();
    let v = extract(&c, key, bounds(&[0, 30, 10, 10], &[1, 40, 5, 5], &[1, 4, 1, 1])).await;
    let first = (20 * 20 * 20 + 20 * 20 * 10 + 20 * 10 + 10) as f64;
    assert_eq!(v.len(), 250);
    assert_eq!(v[0], first);
    assert_eq!(v[125], first + 8000.0);
}

/// test_stride_higherdim_multi_ba: stride 5 on dimension 2.
#[tokio::test(flavor = "multi_thread")]
async fn test_stride_higherdim_multi_ba() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (elements, key) = multi();
    c.client.put_blobs(&elements).await.unwrap();
    let v = extract(&c, key, bounds(&[0, 0, 0, 0], &[1, 20, 20, 5], &[1, 1, 5, 1])).await;
    assert_eq!(v.len(), 400);
    assert_eq!(v[0], 0.0);
    assert_eq!(v[5], (5 * 20) as f64, "the next selected row is 5 rows on");
}

/// A stride of 0 is a bad request.
#[tokio::test(flavor = "multi_thread")]
async fn stride_zero_is_refused() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (elements, key) = single();
    c.client.put_blobs(&elements).await.unwrap();
    let err = c.client.extract_data(key, bounds(&[0, 0, 0], &[1, 1, 10], &[1, 0, 1])).await.unwrap_err();
    assert!(err.to_string().contains("stride"), "{err}");
}
