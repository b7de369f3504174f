//! Array slicing for the datastore's `extract_data` operation (spec §4.5).
//!
//! An `ArrayStructure` is a list of bounded arrays. Each bounded array places a box of values in a
//! global, multi-dimensional index space; its array object holds the box's values flat, in
//! row-major order. A request selects a strided box of that space. This module works out which
//! values of which arrays make up the request, in output order, and groups them into chunks that
//! the service sends one by one as `DataChunkMessage`s. It does no I/O: the caller loads the
//! structure, calls [`plan`], fetches the arrays the chunks name, calls [`gather`] per chunk and
//! sends the results.
//!
//! # The output
//!
//! In dimension `d` the request selects the global indices `origin_d`, `origin_d + stride_d`, … below
//! `origin_d + size_d`: `ceil(size_d / stride_d)` of them. The output index space is the box of
//! those points, in row-major order; a point's *output position* is its index in that order.
//!
//! * Where bounded arrays overlap, the first one (in `bounded_arrays` order) supplies the value.
//! * Points that no array covers are absent from the output. Every chunk covers consecutive output
//!   positions: its values belong at `start_index`, `start_index + 1`, … A gap in coverage always
//!   ends a chunk, so a receiver places each chunk by its `start_index` alone, and the positions it
//!   never receives are the uncovered ones. Without gaps the chunks tile `0..total` in order.
//! * A request that meets no array plans no chunks. The caller then sends no `DataChunkMessage`
//!   (or, if its receivers expect one, a single empty chunk with `done` set, whose array object
//!   can be made with `ArrayValues::decode(type_id, &[])`), followed by the RPC reply.
//!
//! # Chunks
//!
//! Every chunk holds at most `chunk_items` values (see [`ArrayValues::chunk_items`]): strips are
//! split at chunk boundaries, so chunks are full except before a gap and at the end. Within a chunk,
//! strips that continue one another in the same array are merged, so a chunk of a single array is
//! usually a single [`Strip`].
//!
//! # Cost
//!
//! [`plan`] resolves overlaps once per region of the request where the set of covering arrays is
//! constant, not once per point or per pair of strips. Its cost is about `O(A log A)` per such
//! region, where `A` is the number of arrays covering it, plus `O(rank)` per covered row (run of
//! the last dimension) and per strip; points the arrays do not cover cost nothing. [`gather`] costs
//! one copy per value.

use std::collections::BTreeSet;

use dsf_proto::Identified;
use dsf_proto::net::ooici::cdm::syntactic::{
    Bounds, F32Array, F64Array, Int32Array, Int64Array, OpaqueArray, StringArray, Uint32Array, Uint64Array,
};
use prost::Message as _;

/// Chunk limit for arrays of 4-byte values (int32, uint32, f32).
///
/// ION's limit works around a transport overflow bug (OOIION-159); the number of items, not bytes,
/// is what the receivers were tested with.
pub const CHUNK_ITEMS_4_BYTE: usize = 16_000;

/// Chunk limit for arrays of 8-byte values (int64, uint64, f64), and for strings and opaque values.
///
/// Strings and opaque values have no fixed size; like ION, which assumed 8-byte items whenever it
/// could not tell, they get the 8-byte limit.
pub const CHUNK_ITEMS_8_BYTE: usize = 8_000;

/// One dimension of a request or of an array's box.
///
/// A request selects `origin`, `origin + stride`, … below `origin + size`. An array's box is
/// `origin .. origin + size`; its `stride` is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    /// First global index.
    pub origin: i64,
    /// Number of global indices the span extends over (before striding).
    pub size: u64,
    /// Distance between selected indices; at least 1 in a request.
    pub stride: u64,
}

/// Validates a request's dimensions, given as the `request_bounds` of a `DataRequestMessage`.
///
/// An unset `origin` is 0 and an unset `stride` is 1; a `stride` of 0 is an error. An unset `size`
/// is an error too: ION read it as 0, silently selecting nothing, and no useful request leaves it
/// out. An explicit `size` of 0 is allowed and selects nothing.
pub fn request_spans(bounds: &[Bounds]) -> Result<Vec<Span>, ExtractError> {
    bounds
        .iter()
        .enumerate()
        .map(|(dim, b)| {
            let size = b.size.ok_or(ExtractError::MissingSize { dim })?;
            let stride = match b.stride {
                None => 1,
                Some(0) => return Err(ExtractError::ZeroStride { dim }),
                Some(stride) => stride,
            };
            Ok(Span { origin: b.origin.unwrap_or(0), size, stride })
        })
        .collect()
}

/// The box of a bounded array, from its `bounds`.
///
/// An unset `origin` is 0 and an unset `size` is 0 (an empty box, which meets no request). Arrays
/// have no stride; the spans' `stride` is set to 1.
pub fn array_spans(bounds: &[Bounds]) -> Vec<Span> {
    bounds.iter().map(|b| Span { origin: b.origin.unwrap_or(0), size: b.size.unwrap_or(0), stride: 1 }).collect()
}

/// The values of one `DataChunkMessage`: consecutive output positions from `start_index` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Output position of the chunk's first value.
    pub start_index: u64,
    /// Where the values come from, in output order; never empty in a planned chunk.
    pub strips: Vec<Strip>,
}

impl Chunk {
    /// Number of values in the chunk.
    pub fn len(&self) -> u64 {
        self.strips.iter().fold(0, |n, s| n.saturating_add(s.count))
    }

    /// Whether the chunk holds no values (planned chunks never do).
    pub fn is_empty(&self) -> bool {
        self.strips.iter().all(|s| s.count == 0)
    }
}

/// `count` values of array `array`, starting at flat offset `offset` of its values, taking every
/// `step`-th.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Strip {
    /// Index of the array in the list given to [`plan`] (the `bounded_arrays` order).
    pub array: usize,
    /// Flat, row-major offset of the first value within the array's values.
    pub offset: u64,
    /// Number of values.
    pub count: u64,
    /// Distance between consecutive values within the array's values: the request's last stride in
    /// planned strips; 0 repeats one value.
    pub step: u64,
}

/// Plans a request: which values of which arrays, in output order, grouped in chunks of at most
/// `chunk_items` values.
///
/// `arrays` are the boxes of the structure's bounded arrays, in `bounded_arrays` order (see
/// [`array_spans`]); `request` is the request (see [`request_spans`]). Every array must have the
/// request's rank. See the module documentation for the output order, overlaps and gaps.
pub fn plan(arrays: &[Vec<Span>], request: &[Span], chunk_items: usize) -> Result<Vec<Chunk>, ExtractError> {
    let rank = request.len();
    if let Some(dim) = request.iter().position(|s| s.stride == 0) {
        return Err(ExtractError::ZeroStride { dim });
    }
    if let Some((array, spans)) = arrays.iter().enumerate().find(|(_, spans)| spans.len() != rank) {
        return Err(ExtractError::RankMismatch { array, expected: rank, found: spans.len() });
    }
    if chunk_items == 0 {
        return Err(ExtractError::ZeroChunkItems);
    }
    let mut chunker = Chunker::new(chunk_items as u64);
    if rank == 0 {
        // A scalar: one point, supplied by the first array.
        if !arrays.is_empty() {
            chunker.push(0, Strip { array: 0, offset: 0, count: 1, step: 1 });
        }
        return Ok(chunker.finish());
    }

    // Number of selected indices per dimension, and the output position weight of each.
    let counts: Vec<u64> = request.iter().map(|s| s.size.div_ceil(s.stride)).collect();
    if counts.contains(&0) {
        return Ok(Vec::new());
    }
    let mut out_weights = vec![1u64; rank];
    for d in (0..rank - 1).rev() {
        out_weights[d] = out_weights[d + 1].checked_mul(counts[d + 1]).ok_or(ExtractError::RequestTooLarge)?;
    }
    out_weights[0].checked_mul(counts[0]).ok_or(ExtractError::RequestTooLarge)?;

    let mut hits = Vec::new();
    for (index, spans) in arrays.iter().enumerate() {
        if let Some(hit) = Hit::new(index, spans, request, &counts)? {
            hits.push(hit);
        }
    }
    if hits.is_empty() {
        return Ok(Vec::new());
    }
    let all: Vec<usize> = (0..hits.len()).collect();
    let tree = build(&hits, &all, 0, rank);
    let mut walk = Walk { hits: &hits, request, out_weights: &out_weights, prefix: vec![0; rank], chunker };
    walk.visit(&tree, 0);
    Ok(walk.chunker.finish())
}

/// The values of a chunk, gathered from the arrays (indexed as in [`plan`]), as a new array of the
/// same type.
///
/// Only the arrays the chunk's strips name are read, and they must all be of the same type.
pub fn gather(chunk: &Chunk, arrays: &[&ArrayValues]) -> Result<ArrayValues, ExtractError> {
    let first = chunk.strips.first().ok_or(ExtractError::EmptyChunk)?;
    let source =
        |array: usize| arrays.get(array).copied().ok_or(ExtractError::MissingArray { array, given: arrays.len() });
    let expected = source(first.array)?.object_id();

    macro_rules! collect {
        ($variant:ident) => {{
            let mut out = Vec::new();
            for strip in &chunk.strips {
                let values = source(strip.array)?;
                let ArrayValues::$variant(values) = values else {
                    return Err(ExtractError::MixedTypes { array: strip.array, expected, found: values.object_id() });
                };
                take(values, strip, &mut out)?;
            }
            ArrayValues::$variant(out)
        }};
    }

    Ok(match source(first.array)? {
        ArrayValues::Int32(_) => collect!(Int32),
        ArrayValues::UInt32(_) => collect!(UInt32),
        ArrayValues::Int64(_) => collect!(Int64),
        ArrayValues::UInt64(_) => collect!(UInt64),
        ArrayValues::F32(_) => collect!(F32),
        ArrayValues::F64(_) => collect!(F64),
        ArrayValues::Str(_) => collect!(Str),
        ArrayValues::Opaque(_) => collect!(Opaque),
    })
}

/// Appends a strip's values to `out`.
fn take<T: Clone>(values: &[T], strip: &Strip, out: &mut Vec<T>) -> Result<(), ExtractError> {
    if strip.count == 0 {
        return Ok(());
    }
    let short = || ExtractError::ArrayTooShort {
        array: strip.array,
        len: values.len(),
        needed: strip.offset.saturating_add(strip.step.saturating_mul(strip.count - 1)).saturating_add(1),
    };
    let last = strip.step.checked_mul(strip.count - 1).and_then(|x| x.checked_add(strip.offset)).ok_or_else(short)?;
    if last >= values.len() as u64 {
        return Err(short());
    }
    // The offset is at most `last`, below `values.len()`; so is the count unless the step is 0.
    let (offset, count) = (strip.offset as usize, strip.count as usize);
    if strip.step == 0 {
        out.extend(std::iter::repeat_n(values[offset].clone(), count));
    } else {
        out.reserve(count);
        out.extend(values[offset..].iter().step_by(strip.step as usize).take(count).cloned());
    }
    Ok(())
}

/// The values of one array object, of any of the 8 array types.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayValues {
    /// `int32Array` (10009).
    Int32(Vec<i32>),
    /// `uint32Array` (10010).
    UInt32(Vec<u32>),
    /// `int64Array` (10011).
    Int64(Vec<i64>),
    /// `uint64Array` (10012).
    UInt64(Vec<u64>),
    /// `f32Array` (10013).
    F32(Vec<f32>),
    /// `f64Array` (10014).
    F64(Vec<f64>),
    /// `stringArray` (10015).
    Str(Vec<String>),
    /// `opaqueArray` (10016).
    Opaque(Vec<Vec<u8>>),
}

impl ArrayValues {
    /// Decodes an array object from its type's object id and its protobuf encoding.
    ///
    /// Empty `bytes` give an empty array of that type.
    pub fn decode(object_id: i32, bytes: &[u8]) -> Result<ArrayValues, ExtractError> {
        let failed = |source| ExtractError::Decode { object_id, source };
        Ok(match object_id {
            Int32Array::OBJECT_ID => ArrayValues::Int32(Int32Array::decode(bytes).map_err(failed)?.value),
            Uint32Array::OBJECT_ID => ArrayValues::UInt32(Uint32Array::decode(bytes).map_err(failed)?.value),
            Int64Array::OBJECT_ID => ArrayValues::Int64(Int64Array::decode(bytes).map_err(failed)?.value),
            Uint64Array::OBJECT_ID => ArrayValues::UInt64(Uint64Array::decode(bytes).map_err(failed)?.value),
            F32Array::OBJECT_ID => ArrayValues::F32(F32Array::decode(bytes).map_err(failed)?.value),
            F64Array::OBJECT_ID => ArrayValues::F64(F64Array::decode(bytes).map_err(failed)?.value),
            StringArray::OBJECT_ID => ArrayValues::Str(StringArray::decode(bytes).map_err(failed)?.value),
            OpaqueArray::OBJECT_ID => ArrayValues::Opaque(OpaqueArray::decode(bytes).map_err(failed)?.value),
            _ => return Err(ExtractError::UnknownArrayType { object_id }),
        })
    }

    /// The object id of the array type (10009..=10016).
    pub fn object_id(&self) -> i32 {
        match self {
            ArrayValues::Int32(_) => Int32Array::OBJECT_ID,
            ArrayValues::UInt32(_) => Uint32Array::OBJECT_ID,
            ArrayValues::Int64(_) => Int64Array::OBJECT_ID,
            ArrayValues::UInt64(_) => Uint64Array::OBJECT_ID,
            ArrayValues::F32(_) => F32Array::OBJECT_ID,
            ArrayValues::F64(_) => F64Array::OBJECT_ID,
            ArrayValues::Str(_) => StringArray::OBJECT_ID,
            ArrayValues::Opaque(_) => OpaqueArray::OBJECT_ID,
        }
    }

    /// The protobuf encoding of the array message of this type.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ArrayValues::Int32(v) => Int32Array { value: v.clone() }.encode_to_vec(),
            ArrayValues::UInt32(v) => Uint32Array { value: v.clone() }.encode_to_vec(),
            ArrayValues::Int64(v) => Int64Array { value: v.clone() }.encode_to_vec(),
            ArrayValues::UInt64(v) => Uint64Array { value: v.clone() }.encode_to_vec(),
            ArrayValues::F32(v) => F32Array { value: v.clone() }.encode_to_vec(),
            ArrayValues::F64(v) => F64Array { value: v.clone() }.encode_to_vec(),
            ArrayValues::Str(v) => StringArray { value: v.clone() }.encode_to_vec(),
            ArrayValues::Opaque(v) => OpaqueArray { value: v.clone() }.encode_to_vec(),
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            ArrayValues::Int32(v) => v.len(),
            ArrayValues::UInt32(v) => v.len(),
            ArrayValues::Int64(v) => v.len(),
            ArrayValues::UInt64(v) => v.len(),
            ArrayValues::F32(v) => v.len(),
            ArrayValues::F64(v) => v.len(),
            ArrayValues::Str(v) => v.len(),
            ArrayValues::Opaque(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most values a chunk of this type may hold: [`CHUNK_ITEMS_4_BYTE`] for 4-byte types,
    /// [`CHUNK_ITEMS_8_BYTE`] for 8-byte types, strings and opaque values.
    pub fn chunk_items(&self) -> usize {
        match self {
            ArrayValues::Int32(_) | ArrayValues::UInt32(_) | ArrayValues::F32(_) => CHUNK_ITEMS_4_BYTE,
            _ => CHUNK_ITEMS_8_BYTE,
        }
    }
}

/// Why a request cannot be planned or a chunk gathered.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// A request dimension has stride 0.
    #[error("stride of request dimension {dim} is 0")]
    ZeroStride {
        /// The dimension.
        dim: usize,
    },
    /// A request dimension has no size.
    #[error("size of request dimension {dim} is required")]
    MissingSize {
        /// The dimension.
        dim: usize,
    },
    /// A bounded array's rank differs from the request's.
    #[error("bounded array {array} has rank {found}, the request has rank {expected}")]
    RankMismatch {
        /// Index of the array in `bounded_arrays`.
        array: usize,
        /// The request's rank.
        expected: usize,
        /// The array's rank.
        found: usize,
    },
    /// The chunk limit is 0.
    #[error("chunk limit must be at least 1 value")]
    ZeroChunkItems,
    /// The request selects more points than a `u64` counts.
    #[error("request selects more than 2^64 points")]
    RequestTooLarge,
    /// A bounded array's box holds more points than a `u64` counts.
    #[error("box of bounded array {array} holds more than 2^64 points")]
    ArrayTooLarge {
        /// Index of the array in `bounded_arrays`.
        array: usize,
    },
    /// An array object's type id is not one of the 8 array types.
    #[error("object type {object_id} is not an array type")]
    UnknownArrayType {
        /// The type's object id.
        object_id: i32,
    },
    /// An array object does not decode as its type.
    #[error("array object of type {object_id} does not decode")]
    Decode {
        /// The type's object id.
        object_id: i32,
        /// The decoding error.
        source: prost::DecodeError,
    },
    /// An array object has fewer values than its box has points.
    #[error("array {array} has {len} values, fewer than its box needs ({needed})")]
    ArrayTooShort {
        /// Index of the array in `bounded_arrays`.
        array: usize,
        /// Number of values the array has.
        len: usize,
        /// Number of values the chunk needs it to have.
        needed: u64,
    },
    /// A chunk draws on arrays of different types.
    #[error("array {array} is of type {found}, the chunk's first array is of type {expected}")]
    MixedTypes {
        /// Index of the array in `bounded_arrays`.
        array: usize,
        /// Type of the chunk's first array.
        expected: i32,
        /// Type of this array.
        found: i32,
    },
    /// A strip names an array that was not given.
    #[error("strip names array {array}, but {given} arrays were given")]
    MissingArray {
        /// Index the strip names.
        array: usize,
        /// Number of arrays given.
        given: usize,
    },
    /// A chunk has no strips, so it has no type.
    #[error("chunk has no strips")]
    EmptyChunk,
}

/// A bounded array that meets the request in every dimension.
struct Hit {
    /// Index of the array in `bounded_arrays`.
    array: usize,
    /// Per dimension: the selected indices (as counts from the request's origin) inside the box,
    /// `lo..hi`.
    lo: Vec<u64>,
    hi: Vec<u64>,
    /// Per dimension: the array's local index of selected index `lo`.
    local: Vec<u64>,
    /// Per dimension: the flat-offset weight of a local index (row-major).
    weights: Vec<u64>,
}

impl Hit {
    /// The part of array `array` that the request selects, or `None` if it selects nothing.
    fn new(array: usize, spans: &[Span], request: &[Span], counts: &[u64]) -> Result<Option<Hit>, ExtractError> {
        let rank = request.len();
        let (mut lo, mut hi, mut local) = (vec![0; rank], vec![0; rank], vec![0; rank]);
        for d in 0..rank {
            let (req, boxed) = (request[d], spans[d]);
            let stride = i128::from(req.stride);
            let start = i128::from(boxed.origin) - i128::from(req.origin);
            let end = start + i128::from(boxed.size);
            let first = ceil_div(start, stride).max(0);
            let last = ceil_div(end, stride).min(i128::from(counts[d]));
            if first >= last {
                return Ok(None);
            }
            // 0 <= first < last <= counts[d], and the local index lies inside the box: all fit in u64.
            lo[d] = first as u64;
            hi[d] = last as u64;
            local[d] = (first * stride - start) as u64;
        }
        let mut weights = vec![1u64; rank];
        for d in (0..rank - 1).rev() {
            weights[d] = weights[d + 1].checked_mul(spans[d + 1].size).ok_or(ExtractError::ArrayTooLarge { array })?;
        }
        weights[0].checked_mul(spans[0].size).ok_or(ExtractError::ArrayTooLarge { array })?;
        Ok(Some(Hit { array, lo, hi, local, weights }))
    }

    /// Flat offset of the point whose selected indices are `prefix` (outer dimensions) and `k`
    /// (last dimension), which must lie inside this array's part.
    fn offset(&self, request: &[Span], prefix: &[u64], k: u64) -> u64 {
        let last = self.lo.len() - 1;
        let at = |d: usize, k: u64| (self.local[d] + (k - self.lo[d]) * request[d].stride) * self.weights[d];
        (0..last).map(|d| at(d, prefix[d])).sum::<u64>() + at(last, k)
    }
}

/// `ceil(x / y)` for `y > 0`.
fn ceil_div(x: i128, y: i128) -> i128 {
    if x <= 0 { -((-x) / y) } else { (x + y - 1) / y }
}

/// Which array supplies which points of a slab of the request.
///
/// A node describes dimensions `d..rank` for one fixed set of covering arrays; every index of an
/// interval of an outer node shares the same child, so each region is resolved once.
enum Node {
    /// An outer dimension: intervals `lo..hi` of selected indices with their covering arrays.
    Outer(Vec<(u64, u64, Node)>),
    /// The last dimension: intervals `lo..hi` of selected indices and the winning hit.
    Last(Vec<(u64, u64, usize)>),
}

/// Splits dimension `dim` into the intervals where the set of covering hits (among `cover`, in
/// ascending order) is constant and not empty, with that set.
fn intervals(hits: &[Hit], cover: &[usize], dim: usize) -> Vec<(u64, u64, Vec<usize>)> {
    // Boundary events (index, is_start, hit); all events at one index are applied together.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(cover.len() * 2);
    for &h in cover {
        events.push((hits[h].lo[dim], true, h));
        events.push((hits[h].hi[dim], false, h));
    }
    events.sort_unstable();
    let mut active = BTreeSet::new();
    let mut out = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let at = events[i].0;
        while i < events.len() && events[i].0 == at {
            let (_, start, h) = events[i];
            if start {
                active.insert(h);
            } else {
                active.remove(&h);
            }
            i += 1;
        }
        if let (Some(&(next, _, _)), false) = (events.get(i), active.is_empty()) {
            out.push((at, next, active.iter().copied().collect()));
        }
    }
    out
}

/// Resolves dimensions `dim..rank` for the hits in `cover`.
fn build(hits: &[Hit], cover: &[usize], dim: usize, rank: usize) -> Node {
    let parts = intervals(hits, cover, dim);
    if dim + 1 < rank {
        return Node::Outer(
            parts.into_iter().map(|(lo, hi, sub)| (lo, hi, build(hits, &sub, dim + 1, rank))).collect(),
        );
    }
    // First wins: the covering set is sorted, so its first hit has the lowest array index.
    let mut winners: Vec<(u64, u64, usize)> = Vec::with_capacity(parts.len());
    for (lo, hi, sub) in parts {
        match winners.last_mut() {
            Some(prev) if prev.1 == lo && prev.2 == sub[0] => prev.1 = hi,
            _ => winners.push((lo, hi, sub[0])),
        }
    }
    Node::Last(winners)
}

/// Walks a resolved tree in output order, feeding strips to the chunker.
struct Walk<'a> {
    hits: &'a [Hit],
    request: &'a [Span],
    out_weights: &'a [u64],
    /// Selected indices of the outer dimensions of the current row.
    prefix: Vec<u64>,
    chunker: Chunker,
}

impl Walk<'_> {
    fn visit(&mut self, node: &Node, dim: usize) {
        match node {
            Node::Outer(parts) => {
                for (lo, hi, child) in parts {
                    for k in *lo..*hi {
                        self.prefix[dim] = k;
                        self.visit(child, dim + 1);
                    }
                }
            }
            Node::Last(parts) => {
                let row: u64 = (0..dim).map(|d| self.prefix[d] * self.out_weights[d]).sum();
                for &(lo, hi, h) in parts {
                    let hit = &self.hits[h];
                    let strip = Strip {
                        array: hit.array,
                        offset: hit.offset(self.request, &self.prefix, lo),
                        count: hi - lo,
                        step: self.request[dim].stride,
                    };
                    self.chunker.push(row + lo, strip);
                }
            }
        }
    }
}

/// Groups strips, given in output order, into chunks of consecutive output positions.
struct Chunker {
    limit: u64,
    done: Vec<Chunk>,
    current: Chunk,
    /// Number of values in `current`.
    len: u64,
}

impl Chunker {
    fn new(limit: u64) -> Chunker {
        Chunker { limit, done: Vec::new(), current: Chunk { start_index: 0, strips: Vec::new() }, len: 0 }
    }

    /// Adds a strip whose first value belongs at output position `at`.
    fn push(&mut self, mut at: u64, mut strip: Strip) {
        if self.len > 0 && self.current.start_index + self.len != at {
            self.close();
        }
        while strip.count > 0 {
            if self.len == 0 {
                self.current.start_index = at;
            }
            let n = strip.count.min(self.limit - self.len);
            let part = Strip { count: n, ..strip };
            match self.current.strips.last_mut() {
                Some(prev) if prev.array == part.array && prev.step == part.step && continues(prev, part.offset) => {
                    prev.count += n;
                }
                _ => self.current.strips.push(part),
            }
            self.len += n;
            if self.len == self.limit {
                self.close();
            }
            strip.count -= n;
            if strip.count > 0 {
                at += n;
                strip.offset += n * strip.step;
            }
        }
    }

    fn close(&mut self) {
        if self.len > 0 {
            let next = Chunk { start_index: 0, strips: Vec::new() };
            self.done.push(std::mem::replace(&mut self.current, next));
            self.len = 0;
        }
    }

    fn finish(mut self) -> Vec<Chunk> {
        self.close();
        self.done
    }
}

/// Whether a strip starting at flat offset `offset` continues `prev` in its array.
fn continues(prev: &Strip, offset: u64) -> bool {
    prev.count.checked_mul(prev.step).and_then(|n| n.checked_add(prev.offset)) == Some(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An array's box.
    fn boxed(origin: &[i64], size: &[u64]) -> Vec<Span> {
        origin.iter().zip(size).map(|(&origin, &size)| Span { origin, size, stride: 1 }).collect()
    }

    /// A request.
    fn req(origin: &[i64], size: &[u64], stride: &[u64]) -> Vec<Span> {
        origin.iter().zip(size).zip(stride).map(|((&origin, &size), &stride)| Span { origin, size, stride }).collect()
    }

    fn bounds(origin: Option<i64>, size: Option<u64>, stride: Option<u64>) -> Bounds {
        Bounds { origin, size, stride }
    }

    fn volume(spans: &[Span]) -> u64 {
        spans.iter().map(|s| s.size).product()
    }

    /// Checks what every plan promises: chunks in output order, not overlapping, each of 1 to
    /// `limit` values and merged (no strip continues the previous one in the same array).
    fn check_chunks(chunks: &[Chunk], limit: usize) {
        let mut next = 0;
        for chunk in chunks {
            assert!(chunk.start_index >= next, "chunk at {} overlaps the previous one", chunk.start_index);
            assert!(!chunk.is_empty() && chunk.len() <= limit as u64, "chunk of {} values", chunk.len());
            for pair in chunk.strips.windows(2) {
                let mergeable = pair[0].array == pair[1].array
                    && pair[0].step == pair[1].step
                    && continues(&pair[0], pair[1].offset);
                assert!(!mergeable, "unmerged strips {pair:?}");
            }
            next = chunk.start_index + chunk.len();
        }
    }

    /// Plans and gathers a request, returning each value with its output position.
    fn extract(boxes: &[Vec<Span>], arrays: &[ArrayValues], request: &[Span], limit: usize) -> Vec<(u64, ArrayValues)> {
        let chunks = plan(boxes, request, limit).unwrap();
        check_chunks(&chunks, limit);
        let refs: Vec<&ArrayValues> = arrays.iter().collect();
        chunks
            .iter()
            .map(|c| {
                let values = gather(c, &refs).unwrap();
                assert_eq!(values.len() as u64, c.len());
                (c.start_index, values)
            })
            .collect()
    }

    /// Concatenates gathered int64 chunks into (output position, value) pairs.
    fn positioned_i64(chunks: Vec<(u64, ArrayValues)>) -> Vec<(u64, i64)> {
        let mut out = Vec::new();
        for (start, values) in chunks {
            let ArrayValues::Int64(values) = values else { panic!("not int64: {values:?}") };
            out.extend(values.into_iter().enumerate().map(|(i, v)| (start + i as u64, v)));
        }
        out
    }

    /// Concatenates gathered chunks that must tile the output from position 0.
    fn contiguous_i64(chunks: Vec<(u64, ArrayValues)>) -> Vec<i64> {
        let positioned = positioned_i64(chunks);
        for (i, &(at, _)) in positioned.iter().enumerate() {
            assert_eq!(at, i as u64, "output has a gap");
        }
        positioned.into_iter().map(|(_, v)| v).collect()
    }

    /// Point-by-point reference: the value (or nothing) at every output position.
    fn naive(boxes: &[Vec<Span>], arrays: &[Vec<i64>], request: &[Span]) -> Vec<Option<i64>> {
        let counts: Vec<u64> = request.iter().map(|s| s.size.div_ceil(s.stride)).collect();
        let total: u64 = counts.iter().product();
        let mut out = Vec::new();
        for position in 0..total {
            // Selected indices of this output position, last dimension fastest.
            let mut rest = position;
            let mut global = vec![0i64; request.len()];
            for d in (0..request.len()).rev() {
                global[d] = request[d].origin + (rest % counts[d]) as i64 * request[d].stride as i64;
                rest /= counts[d];
            }
            let value = boxes.iter().zip(arrays).find_map(|(spans, values)| {
                let mut flat = 0u64;
                for (s, &g) in spans.iter().zip(&global) {
                    if g < s.origin || g >= s.origin + s.size as i64 {
                        return None;
                    }
                    flat = flat * s.size + (g - s.origin) as u64;
                }
                Some(values[flat as usize])
            });
            out.push(value);
        }
        out
    }

    fn naive_present(boxes: &[Vec<Span>], arrays: &[Vec<i64>], request: &[Span]) -> Vec<(u64, i64)> {
        naive(boxes, arrays, request).into_iter().enumerate().filter_map(|(i, v)| Some((i as u64, v?))).collect()
    }

    fn int64_arrays(arrays: &[Vec<i64>]) -> Vec<ArrayValues> {
        arrays.iter().map(|v| ArrayValues::Int64(v.clone())).collect()
    }

    /// ION's single array: 15×40×200, value = flat index.
    fn single_array() -> (Vec<Vec<Span>>, Vec<Vec<i64>>) {
        (vec![boxed(&[0, 0, 0], &[15, 40, 200])], vec![(0..120_000).collect()])
    }

    /// ION's tiled set: 4 arrays of 1×20×20×20 side by side along dimension 1; array `k` holds
    /// `k * 20³ + local flat index`, which is the flat index in the 1×80×20×20 global space.
    fn four_arrays() -> (Vec<Vec<Span>>, Vec<Vec<i64>>) {
        let boxes = (0..4).map(|k| boxed(&[0, 20 * k, 0, 0], &[1, 20, 20, 20])).collect();
        let arrays = (0..4).map(|k| (0..8000).map(|i| k * 8000 + i).collect()).collect();
        (boxes, arrays)
    }

    #[test]
    fn full_request_returns_every_value_in_order_in_f64_chunks_of_8000() {
        let boxes = vec![boxed(&[0, 0, 0], &[15, 40, 200])];
        let array = ArrayValues::F64((0..120_000).map(f64::from).collect());
        assert_eq!(array.chunk_items(), 8000);
        let request = req(&[0, 0, 0], &[15, 40, 200], &[1, 1, 1]);
        let chunks = plan(&boxes, &request, array.chunk_items()).unwrap();
        assert_eq!(chunks.len(), 15);
        let mut all = Vec::new();
        for (seq, chunk) in chunks.iter().enumerate() {
            assert_eq!(chunk.start_index, seq as u64 * 8000);
            assert_eq!(chunk.strips, vec![Strip { array: 0, offset: seq as u64 * 8000, count: 8000, step: 1 }]);
            let ArrayValues::F64(values) = gather(chunk, &[&array]).unwrap() else { panic!("not f64") };
            all.extend(values);
        }
        assert_eq!(all, (0..120_000).map(f64::from).collect::<Vec<_>>());
    }

    #[test]
    fn full_request_returns_every_value_in_order_in_int32_chunks_of_16000() {
        let boxes = vec![boxed(&[0, 0, 0], &[15, 40, 200])];
        let array = ArrayValues::Int32((0..120_000).collect());
        assert_eq!(array.chunk_items(), 16_000);
        let request = req(&[0, 0, 0], &[15, 40, 200], &[1, 1, 1]);
        let chunks = plan(&boxes, &request, array.chunk_items()).unwrap();
        check_chunks(&chunks, 16_000);
        assert_eq!(chunks.len(), 8);
        let mut all = Vec::new();
        for (seq, chunk) in chunks.iter().enumerate() {
            assert_eq!(chunk.start_index, seq as u64 * 16_000);
            let ArrayValues::Int32(values) = gather(chunk, &[&array]).unwrap() else { panic!("not int32") };
            all.extend(values);
        }
        assert_eq!(all, (0..120_000).collect::<Vec<i32>>());
    }

    #[test]
    fn partial_sub_box_returns_its_values() {
        let (boxes, arrays) = single_array();
        let request = req(&[7, 12, 33], &[1, 10, 100], &[1, 1, 1]);
        let got = contiguous_i64(extract(&boxes, &int64_arrays(&arrays), &request, 8000));
        let mut expected = Vec::new();
        for i in 7..8 {
            for j in 12..22 {
                for k in 33..133 {
                    expected.push(i * 8000 + j * 200 + k);
                }
            }
        }
        assert_eq!(got.len(), 1000);
        assert_eq!(got, expected);
    }

    #[test]
    fn last_dimension_stride_takes_every_stride_th_value() {
        let (boxes, arrays) = single_array();
        let request = req(&[0, 0, 0], &[1, 5, 200], &[1, 1, 10]);
        let chunks = plan(&boxes, &request, 8000).unwrap();
        // Rows of 200 with step 10 continue one another: one strip.
        assert_eq!(
            chunks,
            vec![Chunk { start_index: 0, strips: vec![Strip { array: 0, offset: 0, count: 100, step: 10 }] }]
        );
        let got = contiguous_i64(extract(&boxes, &int64_arrays(&arrays), &request, 8000));
        assert_eq!(got.len(), 100);
        assert!(got.windows(2).all(|w| w[1] - w[0] == 10));
        assert_eq!(got, (0..1000).step_by(10).collect::<Vec<i64>>());
    }

    #[test]
    fn multi_array_full_request_returns_every_value_in_order() {
        let (boxes, arrays) = four_arrays();
        let request = req(&[0, 0, 0, 0], &[1, 80, 20, 20], &[1, 1, 1, 1]);
        let got = contiguous_i64(extract(&boxes, &int64_arrays(&arrays), &request, 8000));
        assert_eq!(got, (0..32_000).collect::<Vec<i64>>());
        // One full chunk per array.
        let chunks = plan(&boxes, &request, 8000).unwrap();
        let per_array: Vec<Vec<Strip>> =
            (0..4).map(|a| vec![Strip { array: a, offset: 0, count: 8000, step: 1 }]).collect();
        assert_eq!(chunks.into_iter().map(|c| c.strips).collect::<Vec<_>>(), per_array);
    }

    #[test]
    fn multi_array_crossing_request_continues_in_the_next_array() {
        // ION's numbers: the first value is 20³+20²·10+20·10+10, the one at output position 125 is 20³ more.
        let (boxes, arrays) = four_arrays();
        let request = req(&[0, 30, 10, 10], &[1, 40, 5, 5], &[1, 4, 1, 1]);
        let got = contiguous_i64(extract(&boxes, &int64_arrays(&arrays), &request, 8000));
        let first = 20 * 20 * 20 + 20 * 20 * 10 + 20 * 10 + 10;
        assert_eq!(got.len(), 250);
        assert_eq!(got[0], first);
        assert_eq!(got[125], first + 20 * 20 * 20);
        let expected: Vec<i64> = naive(&boxes, &arrays, &request).into_iter().map(Option::unwrap).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn multi_array_stride_on_higher_dimension_returns_strided_values() {
        let (boxes, arrays) = four_arrays();
        let request = req(&[0, 38, 0, 0], &[1, 5, 20, 20], &[1, 1, 5, 1]);
        let got = contiguous_i64(extract(&boxes, &int64_arrays(&arrays), &request, 8000));
        assert_eq!(got.len(), 400);
        assert_eq!(got[0], 38 * 400);
        assert_eq!(got[1], 38 * 400 + 1);
        assert_eq!(got[20], 38 * 400 + 5 * 20);
        assert_eq!(got[80], 39 * 400);
        assert_eq!(got[160], 40 * 400);
        let expected: Vec<i64> = naive(&boxes, &arrays, &request).into_iter().map(Option::unwrap).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn error_stride_zero() {
        let err = request_spans(&[bounds(Some(0), Some(4), None), bounds(Some(0), Some(4), Some(0))]).unwrap_err();
        assert!(matches!(err, ExtractError::ZeroStride { dim: 1 }), "{err:?}");
        assert_eq!(err.to_string(), "stride of request dimension 1 is 0");
        let err = plan(&[], &req(&[0], &[4], &[0]), 10).unwrap_err();
        assert!(matches!(err, ExtractError::ZeroStride { dim: 0 }), "{err:?}");
    }

    #[test]
    fn error_missing_size() {
        let err = request_spans(&[bounds(Some(0), None, Some(1))]).unwrap_err();
        assert!(matches!(err, ExtractError::MissingSize { dim: 0 }), "{err:?}");
    }

    #[test]
    fn request_spans_default_origin_0_and_stride_1() {
        let spans = request_spans(&[bounds(None, Some(3), None), bounds(Some(-2), Some(0), Some(7))]).unwrap();
        assert_eq!(spans, vec![Span { origin: 0, size: 3, stride: 1 }, Span { origin: -2, size: 0, stride: 7 }]);
    }

    #[test]
    fn array_spans_default_to_an_empty_box_at_0() {
        let spans = array_spans(&[bounds(None, None, None), bounds(Some(5), Some(6), Some(9))]);
        assert_eq!(spans, vec![Span { origin: 0, size: 0, stride: 1 }, Span { origin: 5, size: 6, stride: 1 }]);
    }

    #[test]
    fn error_rank_mismatch() {
        let boxes = vec![boxed(&[0, 0], &[2, 2]), boxed(&[0, 0, 0], &[2, 2, 2])];
        let err = plan(&boxes, &req(&[0, 0], &[2, 2], &[1, 1]), 10).unwrap_err();
        assert!(matches!(err, ExtractError::RankMismatch { array: 1, expected: 2, found: 3 }), "{err:?}");
        assert_eq!(err.to_string(), "bounded array 1 has rank 3, the request has rank 2");
    }

    #[test]
    fn error_unknown_array_type() {
        let err = ArrayValues::decode(10024, &[]).unwrap_err();
        assert!(matches!(err, ExtractError::UnknownArrayType { object_id: 10024 }), "{err:?}");
        let err = ArrayValues::decode(10008, &[]).unwrap_err();
        assert!(matches!(err, ExtractError::UnknownArrayType { object_id: 10008 }), "{err:?}");
    }

    #[test]
    fn error_undecodable_array() {
        let err = ArrayValues::decode(10014, &[0x0a, 0x05, 1]).unwrap_err();
        assert!(matches!(err, ExtractError::Decode { object_id: 10014, .. }), "{err:?}");
    }

    #[test]
    fn error_array_too_short_for_its_box() {
        let boxes = vec![boxed(&[0, 0], &[3, 4])];
        let chunks = plan(&boxes, &req(&[0, 0], &[3, 4], &[1, 1]), 100).unwrap();
        let short = ArrayValues::UInt32((0..11).collect());
        let err = gather(&chunks[0], &[&short]).unwrap_err();
        assert!(matches!(err, ExtractError::ArrayTooShort { array: 0, len: 11, needed: 12 }), "{err:?}");
        let err = gather(&chunks[0], &[]).unwrap_err();
        assert!(matches!(err, ExtractError::MissingArray { array: 0, given: 0 }), "{err:?}");
    }

    #[test]
    fn error_mixed_array_types() {
        let boxes = vec![boxed(&[0], &[2]), boxed(&[2], &[2])];
        let chunks = plan(&boxes, &req(&[0], &[4], &[1]), 100).unwrap();
        let (a, b) = (ArrayValues::F32(vec![1.0, 2.0]), ArrayValues::F64(vec![3.0, 4.0]));
        let err = gather(&chunks[0], &[&a, &b]).unwrap_err();
        assert!(matches!(err, ExtractError::MixedTypes { array: 1, expected: 10013, found: 10014 }), "{err:?}");
    }

    #[test]
    fn error_zero_chunk_items_and_empty_chunk() {
        let err = plan(&[boxed(&[0], &[2])], &req(&[0], &[2], &[1]), 0).unwrap_err();
        assert!(matches!(err, ExtractError::ZeroChunkItems), "{err:?}");
        let err = gather(&Chunk { start_index: 0, strips: Vec::new() }, &[]).unwrap_err();
        assert!(matches!(err, ExtractError::EmptyChunk), "{err:?}");
    }

    #[test]
    fn error_request_too_large() {
        let request = req(&[0, 0], &[u64::MAX, u64::MAX], &[1, 1]);
        let err = plan(&[], &request, 10).unwrap_err();
        assert!(matches!(err, ExtractError::RequestTooLarge), "{err:?}");
    }

    #[test]
    fn request_meeting_no_array_plans_no_chunks() {
        let (boxes, _) = four_arrays();
        let miss = [
            req(&[1, 0, 0, 0], &[1, 80, 20, 20], &[1, 1, 1, 1]),
            req(&[0, 80, 0, 0], &[1, 10, 20, 20], &[1, 1, 1, 1]),
            req(&[0, 0, 0, -5], &[1, 80, 20, 5], &[1, 1, 1, 1]),
            req(&[0, 0, 0, 0], &[1, 80, 0, 20], &[1, 1, 1, 1]),
            // Stride steps over the whole box.
            req(&[0, 0, 0, -3], &[1, 80, 20, 40], &[1, 1, 1, 30]),
        ];
        for request in miss {
            assert_eq!(plan(&boxes, &request, 8000).unwrap(), Vec::new(), "{request:?}");
        }
        assert_eq!(plan(&[], &req(&[0], &[5], &[1]), 8000).unwrap(), Vec::new());
    }

    #[test]
    fn overlapping_arrays_first_wins() {
        // Array 1 overlaps the right half of array 0 and extends beyond it; array 2 covers all of it.
        let boxes = vec![boxed(&[0, 0], &[4, 4]), boxed(&[1, 2], &[4, 4]), boxed(&[0, 0], &[8, 8])];
        let arrays = vec![vec![100; 16], vec![200; 16], vec![300; 64]];
        let request = req(&[0, 0], &[6, 7], &[1, 1]);
        let got = contiguous_i64(extract(&boxes, &int64_arrays(&arrays), &request, 5));
        #[rustfmt::skip]
        let expected = vec![
            100, 100, 100, 100, 300, 300, 300,
            100, 100, 100, 100, 200, 200, 300,
            100, 100, 100, 100, 200, 200, 300,
            100, 100, 100, 100, 200, 200, 300,
            300, 300, 200, 200, 200, 200, 300,
            300, 300, 300, 300, 300, 300, 300,
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn uncovered_points_end_chunks_and_start_index_places_the_next() {
        // Two arrays with a gap of 2 between them along the only dimension.
        let boxes = vec![boxed(&[0], &[3]), boxed(&[5], &[3])];
        let arrays = vec![vec![0, 1, 2], vec![5, 6, 7]];
        let chunks = plan(&boxes, &req(&[-1], &[10], &[1]), 100).unwrap();
        assert_eq!(
            chunks,
            vec![
                Chunk { start_index: 1, strips: vec![Strip { array: 0, offset: 0, count: 3, step: 1 }] },
                Chunk { start_index: 6, strips: vec![Strip { array: 1, offset: 0, count: 3, step: 1 }] },
            ]
        );
        let got = positioned_i64(extract(&boxes, &int64_arrays(&arrays), &req(&[-1], &[10], &[1]), 100));
        assert_eq!(got, vec![(1, 0), (2, 1), (3, 2), (6, 5), (7, 6), (8, 7)]);
    }

    #[test]
    fn strips_split_at_the_chunk_limit() {
        let (boxes, arrays) = single_array();
        let request = req(&[0, 0, 0], &[1, 3, 200], &[1, 1, 1]);
        let chunks = plan(&boxes, &request, 250).unwrap();
        let lens: Vec<u64> = chunks.iter().map(Chunk::len).collect();
        assert_eq!(lens, vec![250, 250, 100]);
        assert_eq!(chunks.iter().map(|c| c.start_index).collect::<Vec<_>>(), vec![0, 250, 500]);
        let got = contiguous_i64(extract(&boxes, &int64_arrays(&arrays), &request, 250));
        assert_eq!(got, (0..600).collect::<Vec<i64>>());
    }

    #[test]
    fn scalar_request_takes_the_first_array() {
        let chunks = plan(&[Vec::new(), Vec::new()], &[], 10).unwrap();
        assert_eq!(
            chunks,
            vec![Chunk { start_index: 0, strips: vec![Strip { array: 0, offset: 0, count: 1, step: 1 }] }]
        );
        assert_eq!(plan(&[], &[], 10).unwrap(), Vec::new());
    }

    #[test]
    fn many_tiled_arrays_plan_one_strip_per_array_row() {
        // 5000 arrays of 2×100 stacked along dimension 0.
        let boxes: Vec<Vec<Span>> = (0..5000).map(|k| boxed(&[2 * k, 0], &[2, 100])).collect();
        let request = req(&[0, 0], &[10_000, 100], &[1, 1]);
        let chunks = plan(&boxes, &request, 8000).unwrap();
        check_chunks(&chunks, 8000);
        assert_eq!(chunks.len(), 125);
        assert_eq!(chunks.iter().map(|c| c.strips.len()).sum::<usize>(), 5000);
        assert!(chunks.iter().flat_map(|c| &c.strips).enumerate().all(|(k, s)| s.array == k && s.count == 200));
    }

    #[test]
    fn array_values_encode_as_their_message_and_decode_back() {
        let samples = vec![
            (ArrayValues::Int32(vec![-1, 0, 7]), Int32Array { value: vec![-1, 0, 7] }.encode_to_vec(), 16_000),
            (ArrayValues::UInt32(vec![1, 2]), Uint32Array { value: vec![1, 2] }.encode_to_vec(), 16_000),
            (ArrayValues::Int64(vec![-5, i64::MAX]), Int64Array { value: vec![-5, i64::MAX] }.encode_to_vec(), 8000),
            (ArrayValues::UInt64(vec![u64::MAX]), Uint64Array { value: vec![u64::MAX] }.encode_to_vec(), 8000),
            (ArrayValues::F32(vec![1.5, -0.25]), F32Array { value: vec![1.5, -0.25] }.encode_to_vec(), 16_000),
            (ArrayValues::F64(vec![2.5]), F64Array { value: vec![2.5] }.encode_to_vec(), 8000),
            (
                ArrayValues::Str(vec!["a".into(), String::new()]),
                StringArray { value: vec!["a".into(), String::new()] }.encode_to_vec(),
                8000,
            ),
            (ArrayValues::Opaque(vec![vec![0, 255]]), OpaqueArray { value: vec![vec![0, 255]] }.encode_to_vec(), 8000),
        ];
        for (id, (values, bytes, chunk_items)) in (10009..).zip(samples) {
            assert_eq!(values.object_id(), id);
            assert_eq!(values.encode(), bytes, "{values:?}");
            assert_eq!(ArrayValues::decode(id, &bytes).unwrap(), values);
            assert_eq!(values.chunk_items(), chunk_items);
            let empty = ArrayValues::decode(id, &[]).unwrap();
            assert!(empty.is_empty() && empty.object_id() == id);
        }
    }

    #[test]
    fn gathered_strings_keep_their_type() {
        let boxes = vec![boxed(&[0], &[3]), boxed(&[3], &[2])];
        let a = ArrayValues::Str(vec!["a".into(), "b".into(), "c".into()]);
        let b = ArrayValues::Str(vec!["d".into(), "e".into()]);
        let chunks = plan(&boxes, &req(&[1], &[4], &[2]), 10).unwrap();
        assert_eq!(gather(&chunks[0], &[&a, &b]).unwrap(), ArrayValues::Str(vec!["b".into(), "d".into()]));
    }

    /// A tiny deterministic generator (xorshift64*).
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// Uniform in `lo..=hi`.
        fn range(&mut self, lo: i64, hi: i64) -> i64 {
            lo + (self.next() % (hi - lo + 1) as u64) as i64
        }
    }

    #[test]
    fn plan_and_gather_match_point_by_point_extraction() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for case in 0..2000 {
            let rank = rng.range(1, 4) as usize;
            let array_count = rng.range(0, 6) as usize;
            let mut boxes = Vec::new();
            let mut arrays = Vec::new();
            for a in 0..array_count {
                let spans: Vec<Span> = (0..rank)
                    .map(|_| Span { origin: rng.range(-4, 8), size: rng.range(0, 7) as u64, stride: 1 })
                    .collect();
                arrays.push((0..volume(&spans) as i64).map(|i| a as i64 * 1_000_000 + i).collect::<Vec<i64>>());
                boxes.push(spans);
            }
            // Sometimes a regular tiling along dimension 0 instead.
            if case % 4 == 0 && rank > 1 {
                let width = rng.range(1, 4);
                let rest: Vec<u64> = (1..rank).map(|_| rng.range(1, 6) as u64).collect();
                boxes.clear();
                arrays.clear();
                for a in 0..array_count as i64 {
                    let mut spans = vec![Span { origin: a * width - 3, size: width as u64, stride: 1 }];
                    spans.extend(rest.iter().map(|&size| Span { origin: 0, size, stride: 1 }));
                    arrays.push((0..volume(&spans) as i64).map(|i| a * 1_000_000 + i).collect());
                    boxes.push(spans);
                }
            }
            let request: Vec<Span> = (0..rank)
                .map(|_| Span {
                    origin: rng.range(-6, 8),
                    size: rng.range(0, 16) as u64,
                    stride: rng.range(1, 4) as u64,
                })
                .collect();
            let limit = rng.range(1, 40) as usize;
            let got = positioned_i64(extract(&boxes, &int64_arrays(&arrays), &request, limit));
            let expected = naive_present(&boxes, &arrays, &request);
            assert_eq!(got, expected, "case {case}: boxes {boxes:?}, request {request:?}, limit {limit}");
        }
    }
}
