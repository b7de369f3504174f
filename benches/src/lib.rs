//! Object-graph workloads for the DSF benchmarks and the side-by-side comparison scripts.
//!
//! This crate owns the generators that benches and scripts share:
//!
//! - [`Shape::Dataset`]: a CDM dataset (`Dataset` → root `Group` → sub-groups → variables with
//!   attributes, dimensions and array content), the shape of ION's science data;
//! - [`Shape::FlatList`]: one `ListObj` linking many `KeyValue` objects, the widest possible
//!   object;
//! - fixtures built on them: a committed repository, two commits that differ in 1 % of their
//!   objects (for diff), two branches that each change a different 1 % (for merge), a message
//!   repository (for `Structure` pack and unpack), and exactly sized objects for the encode and
//!   hash pipeline.
//!
//! Every generator is deterministic: content comes from a seeded [`Rng`], commits are dated
//! [`COMMIT_DATE`] (plus a step per later commit) and repositories get [`REPOSITORY_KEY`], so the
//! same seed gives the same objects and the same content keys. Generated objects are pairwise
//! distinct, so the object count of a generated graph is exact (DSF stores equal objects once).
//!
//! It knows only the public API of `dsf`; it measures nothing itself.

use std::collections::{HashSet, VecDeque};

use dsf::proto::net::ooici::cdm::syntactic::{
    ArrayStructure, Attribute, BoundedArray, Bounds, DataType, Dataset, Dimension, F64Array, Group, StringArray,
    Variable,
};
use dsf::proto::net::ooici::core::link::CasRef;
use dsf::proto::net::ooici::core::message::IonMsg;
use dsf::proto::net::ooici::play::{KeyValue, ListObj, TestObj};
use dsf::{Checkout, HashAlgorithm, Key, ObjectId, Registry, Repository, Result, TypeId};
use prost::Message as _;

/// The seed the benches and scripts use unless told otherwise.
pub const DEFAULT_SEED: u64 = 0x0D5F_BE4C;

/// The date (seconds since the Unix epoch) of the first commit of every generated repository;
/// later commits of a fixture are one second apart.
pub const COMMIT_DATE: f64 = 1_275_350_400.0;

/// The key every generated repository gets, so that commit keys are reproducible.
pub const REPOSITORY_KEY: &str = "00000000-0000-4000-8000-00000000BE4C";

/// The nickname of the second branch of a [`MergeFixture`].
pub const THEIRS: &str = "theirs";

/// A small, fast, seeded pseudo-random generator (SplitMix64).
///
/// Not for cryptography: it only makes generated content varied and reproducible.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose output depends only on `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), with negligible bias for the small `n` used here.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below needs a non-empty range");
        (self.next_u64() % n as u64) as usize
    }

    /// A float in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A float in `[low, high)`.
    pub fn range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    /// `len` lowercase hexadecimal characters.
    pub fn hex(&mut self, len: usize) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        (0..len).map(|_| char::from(DIGITS[self.below(16)])).collect()
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// The shape of a generated object graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A CDM dataset; see [`build_dataset`].
    Dataset,
    /// One `ListObj` linking `KeyValue` objects; see [`build_flat_list`].
    FlatList,
}

impl Shape {
    /// Both shapes.
    pub const ALL: [Shape; 2] = [Shape::Dataset, Shape::FlatList];

    /// A short name for bench ids and reports.
    pub const fn name(self) -> &'static str {
        match self {
            Shape::Dataset => "dataset",
            Shape::FlatList => "flat-list",
        }
    }

    /// The smallest object count this shape can be built with.
    pub const fn min_objects(self) -> usize {
        match self {
            Shape::Dataset => DatasetLayout::MIN_OBJECTS,
            Shape::FlatList => 1,
        }
    }

    /// Creates a graph of exactly `objects` new objects in `repo`'s workspace and returns its
    /// root (not yet set as the workspace root, not committed).
    ///
    /// # Panics
    ///
    /// If `objects` is below [`Shape::min_objects`].
    pub fn build(self, repo: &mut Repository, objects: usize, seed: u64) -> Result<ObjectId> {
        assert!(
            objects >= self.min_objects(),
            "a {} graph needs at least {} objects, not {objects}",
            self.name(),
            self.min_objects()
        );
        match self {
            Shape::Dataset => build_dataset(repo, &DatasetLayout::for_objects(objects), seed),
            Shape::FlatList => build_flat_list(repo, objects - 1, seed),
        }
    }
}

/// How a dataset of a given object count is laid out.
///
/// Object counts: the `Dataset` and its root `Group` (2); per sub-group, the group, two
/// dimensions and two attributes each with its array (7); per variable, the variable, three
/// attributes each with its array, and its content `ArrayStructure` → `BoundedArray` →
/// `F64Array` (10). What is left over (fewer than 10) becomes attributes (2 each) and at most
/// one dimension (1) of the root group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetLayout {
    /// The number of variables of each sub-group.
    pub variables_per_group: Vec<usize>,
    /// Extra attributes of the root group.
    pub root_attributes: usize,
    /// Extra dimensions of the root group.
    pub root_dimensions: usize,
}

impl DatasetLayout {
    /// Objects of the `Dataset` and its root `Group`.
    pub const TOP_OBJECTS: usize = 2;
    /// Objects of a sub-group without its variables.
    pub const GROUP_OBJECTS: usize = 7;
    /// Objects of one variable, its attributes and its content.
    pub const VARIABLE_OBJECTS: usize = 10;
    /// The number of variables a sub-group gets before another sub-group is added.
    pub const VARIABLES_PER_GROUP: usize = 20;
    /// The smallest dataset: the top and one empty sub-group.
    pub const MIN_OBJECTS: usize = Self::TOP_OBJECTS + Self::GROUP_OBJECTS;

    /// The layout of a dataset of exactly `objects` objects.
    ///
    /// # Panics
    ///
    /// If `objects` is below [`DatasetLayout::MIN_OBJECTS`].
    pub fn for_objects(objects: usize) -> DatasetLayout {
        assert!(objects >= Self::MIN_OBJECTS, "a dataset needs at least {} objects", Self::MIN_OBJECTS);
        let body = objects - Self::TOP_OBJECTS;
        let per_group = Self::GROUP_OBJECTS + Self::VARIABLES_PER_GROUP * Self::VARIABLE_OBJECTS;
        let groups = (body / per_group).max(1);
        let rest = body - groups * Self::GROUP_OBJECTS;
        let variables = rest / Self::VARIABLE_OBJECTS;
        let leftover = rest % Self::VARIABLE_OBJECTS;
        let variables_per_group =
            (0..groups).map(|g| variables / groups + usize::from(g < variables % groups)).collect();
        DatasetLayout { variables_per_group, root_attributes: leftover / 2, root_dimensions: leftover % 2 }
    }

    /// The number of objects this layout makes.
    pub fn objects(&self) -> usize {
        Self::TOP_OBJECTS
            + self.variables_per_group.len() * Self::GROUP_OBJECTS
            + self.variables_per_group.iter().sum::<usize>() * Self::VARIABLE_OBJECTS
            + self.root_attributes * 2
            + self.root_dimensions
    }
}

/// The number of values in each variable's content array.
pub const CONTENT_VALUES: usize = 16;

/// Creates a CDM dataset laid out as `layout` in `repo`'s workspace, bottom-up, and returns
/// the `Dataset` object. Nothing is committed.
pub fn build_dataset(repo: &mut Repository, layout: &DatasetLayout, seed: u64) -> Result<ObjectId> {
    let mut b = DatasetBuilder { repo, rng: Rng::new(seed) };
    let mut groups = Vec::with_capacity(layout.variables_per_group.len());
    for (g, &variables) in layout.variables_per_group.iter().enumerate() {
        groups.push(b.group(g, variables)?);
    }
    let mut attributes = Vec::with_capacity(layout.root_attributes);
    for a in 0..layout.root_attributes {
        let text = format!("dataset note {a}: {}", b.rng.hex(16));
        attributes.push(b.string_attribute(&format!("comment_{a}"), "/", text)?);
    }
    let mut dimensions = Vec::with_capacity(layout.root_dimensions);
    for d in 0..layout.root_dimensions {
        let length = 1 + b.rng.below(64) as u64;
        dimensions.push(b.dimension(&format!("station_{d}"), "/", length)?);
    }
    let root = Group {
        name: "root".to_owned(),
        source_name: Some("/".to_owned()),
        groups: b.links(&groups)?,
        dimensions: b.links(&dimensions)?,
        attributes: b.links(&attributes)?,
        variables: Vec::new(),
        enumdefs: Vec::new(),
    };
    let root = b.repo.create(&root)?;
    let dataset = Dataset { root_group: Some(b.repo.link(root)?) };
    b.repo.create(&dataset)
}

struct DatasetBuilder<'r> {
    repo: &'r mut Repository,
    rng: Rng,
}

impl DatasetBuilder<'_> {
    fn links(&self, ids: &[ObjectId]) -> Result<Vec<CasRef>> {
        ids.iter().map(|&id| self.repo.link(id)).collect()
    }

    fn string_attribute(&mut self, name: &str, path: &str, text: String) -> Result<ObjectId> {
        let array = self.repo.create(&StringArray { value: vec![text] })?;
        self.attribute(name, path, DataType::String, array)
    }

    fn f64_attribute(&mut self, name: &str, path: &str, values: Vec<f64>) -> Result<ObjectId> {
        let array = self.repo.create(&F64Array { value: values })?;
        self.attribute(name, path, DataType::Double, array)
    }

    fn attribute(&mut self, name: &str, path: &str, data_type: DataType, array: ObjectId) -> Result<ObjectId> {
        let attribute = Attribute {
            name: name.to_owned(),
            source_name: Some(format!("{path}@{name}")),
            data_type: data_type as i32,
            array: self.repo.link(array)?,
        };
        self.repo.create(&attribute)
    }

    fn dimension(&mut self, name: &str, path: &str, length: u64) -> Result<ObjectId> {
        let dimension = Dimension {
            name: Some(name.to_owned()),
            source_name: Some(format!("{path}/{name}")),
            length: Some(length),
            variable_length: Some(false),
            min_offset: None,
        };
        self.repo.create(&dimension)
    }

    fn group(&mut self, g: usize, variables: usize) -> Result<ObjectId> {
        let path = format!("/profile_{g:05}");
        let time = self.dimension("time", &path, CONTENT_VALUES as u64)?;
        let depth_levels = 1 + self.rng.below(500) as u64;
        let depth = self.dimension("depth", &path, depth_levels)?;
        let title = format!("Synthetic CTD profile {g} ({})", self.rng.hex(8));
        let position = vec![self.rng.range(-90.0, 90.0), self.rng.range(-180.0, 180.0)];
        let attributes = vec![
            self.string_attribute("title", &path, title)?,
            self.f64_attribute("geospatial_lat_lon", &path, position)?,
        ];
        let mut vars = Vec::with_capacity(variables);
        for v in 0..variables {
            vars.push(self.variable(&path, v, &[time, depth])?);
        }
        let group = Group {
            name: format!("profile_{g:05}"),
            source_name: Some(path),
            groups: Vec::new(),
            dimensions: self.links(&[time, depth])?,
            attributes: self.links(&attributes)?,
            variables: self.links(&vars)?,
            enumdefs: Vec::new(),
        };
        self.repo.create(&group)
    }

    fn variable(&mut self, group_path: &str, v: usize, shape: &[ObjectId]) -> Result<ObjectId> {
        const QUANTITIES: [(&str, &str, f64, f64); 4] = [
            ("sea_water_temperature", "degree_Celsius", -2.0, 35.0),
            ("sea_water_salinity", "1e-3", 0.0, 42.0),
            ("sea_water_pressure", "dbar", 0.0, 6000.0),
            ("mass_concentration_of_oxygen_in_sea_water", "kg m-3", 0.0, 0.02),
        ];
        let (standard_name, units, low, high) = QUANTITIES[v % QUANTITIES.len()];
        let name = format!("{standard_name}_{v:03}");
        let path = format!("{group_path}/{name}");
        let long_name = format!("{standard_name} in {units}, series {v} of {group_path}");
        let fill = -self.rng.range(1.0e4, 1.0e5);
        let range = vec![self.rng.range(low, high), self.rng.range(low, high)];
        let attributes = vec![
            self.string_attribute("long_name", &path, long_name)?,
            self.f64_attribute("valid_range", &path, range)?,
            self.f64_attribute("_FillValue", &path, vec![fill])?,
        ];
        let values = (0..CONTENT_VALUES).map(|_| self.rng.range(low, high)).collect();
        let values = self.repo.create(&F64Array { value: values })?;
        let bounded = BoundedArray {
            bounds: vec![Bounds { origin: Some(0), size: Some(CONTENT_VALUES as u64), stride: Some(1) }],
            ndarray: Some(self.repo.link(values)?),
        };
        let bounded = self.repo.create(&bounded)?;
        let content = self.repo.create(&ArrayStructure { bounded_arrays: vec![self.repo.link(bounded)?] })?;
        let variable = Variable {
            name: Some(name),
            source_name: Some(path),
            data_type: Some(DataType::Double as i32),
            attributes: self.links(&attributes)?,
            shape: self.links(shape)?,
            content: Some(self.repo.link(content)?),
            enum_typedef: None,
        };
        self.repo.create(&variable)
    }
}

/// Creates `items` `KeyValue` objects and one `ListObj` linking them all, in `repo`'s workspace,
/// and returns the `ListObj`. Nothing is committed.
pub fn build_flat_list(repo: &mut Repository, items: usize, seed: u64) -> Result<ObjectId> {
    let mut rng = Rng::new(seed);
    let mut links = Vec::with_capacity(items);
    for i in 0..items {
        let kv = KeyValue { key: format!("sensor/{i:07}/serial"), value: rng.hex(24) };
        let id = repo.create(&kv)?;
        links.push(repo.link(id)?);
    }
    repo.create(&ListObj { items: links })
}

/// A new, empty SHA-1 repository of the built-in types with the fixed [`REPOSITORY_KEY`].
pub fn new_repository(registry: &Registry) -> Repository {
    Repository::with_key(registry.clone(), REPOSITORY_KEY, HashAlgorithm::Sha1)
}

/// Builds a graph of `objects` objects of `shape` into `repo`, makes it the workspace root and
/// commits it on the current branch, dated `date`. Returns the commit key.
pub fn build_and_commit(repo: &mut Repository, shape: Shape, objects: usize, seed: u64, date: f64) -> Result<Key> {
    let root = shape.build(repo, objects, seed)?;
    repo.set_root(root)?;
    repo.commit_at(&format!("{objects} objects of shape {}", shape.name()), date)
}

/// A new repository holding one commit of `objects` objects of `shape` on `master`, checked
/// out (everything loaded). Returns the repository and the commit key.
pub fn committed(registry: &Registry, shape: Shape, objects: usize, seed: u64) -> Result<(Repository, Key)> {
    committed_as(registry, REPOSITORY_KEY, shape, objects, seed)
}

/// [`committed`], in a repository with key `key`.
pub fn committed_as(
    registry: &Registry,
    key: &str,
    shape: Shape,
    objects: usize,
    seed: u64,
) -> Result<(Repository, Key)> {
    let mut repo = Repository::with_key(registry.clone(), key, HashAlgorithm::Sha1);
    let commit = build_and_commit(&mut repo, shape, objects, seed, COMMIT_DATE)?;
    Ok((repo, commit))
}

/// A checkout that loads every object, including the `ArrayStructure` subtrees a repository
/// excludes by default.
pub fn full_checkout(branch: &str) -> Checkout {
    Checkout::branch(branch).excluded_types([])
}

/// One percent of `objects`, at least one: the size of a change set.
pub fn one_percent(objects: usize) -> usize {
    (objects / 100).max(1)
}

/// The loaded objects reachable from the workspace root, breadth first in link order, each
/// once. The order depends only on the graph, so it is the same after a checkout.
pub fn reachable_objects(repo: &Repository) -> Result<Vec<ObjectId>> {
    let Some(root) = repo.root() else { return Ok(Vec::new()) };
    let mut seen = HashSet::from([root]);
    let mut order = vec![root];
    let mut queue = VecDeque::from([root]);
    while let Some(id) = queue.pop_front() {
        for child in repo.children(id)? {
            if seen.insert(child) {
                order.push(child);
                queue.push_back(child);
            }
        }
    }
    Ok(order)
}

/// True for the types [`change_objects`] knows how to edit: the data-carrying leaves
/// (`F64Array`, `StringArray`, `Dimension`, `KeyValue`).
pub fn is_editable(ty: TypeId) -> bool {
    ty == TypeId::of::<F64Array>()
        || ty == TypeId::of::<StringArray>()
        || ty == TypeId::of::<Dimension>()
        || ty == TypeId::of::<KeyValue>()
}

/// Edits `count` loaded objects of the workspace (editable leaves, see [`is_editable`]).
///
/// The editable objects are shuffled with `seed` and cut into consecutive slices of `count`;
/// `part` picks the slice. Two calls with the same seed and different parts therefore edit
/// disjoint sets of objects, which is what a conflict-free merge needs. Each edit appends to
/// the object (a value, a string, a length step), so edited objects stay distinct from every
/// other object. Returns the number of objects edited.
///
/// # Panics
///
/// If the graph has fewer than `count * (part + 1)` editable objects.
pub fn change_objects(repo: &mut Repository, count: usize, seed: u64, part: usize) -> Result<usize> {
    let mut editable = Vec::new();
    for id in reachable_objects(repo)? {
        if is_editable(repo.type_of(id)?) {
            editable.push(id);
        }
    }
    let (start, end) = (count * part, count * (part + 1));
    assert!(end <= editable.len(), "only {} editable objects: cannot edit slice {start}..{end}", editable.len());
    Rng::new(seed).shuffle(&mut editable);
    let marker = part as f64 + 1.0;
    for &id in &editable[start..end] {
        let ty = repo.type_of(id)?;
        if ty == TypeId::of::<F64Array>() {
            repo.update::<F64Array>(id, |a| a.value.push(-marker))?;
        } else if ty == TypeId::of::<StringArray>() {
            repo.update::<StringArray>(id, |a| a.value.push(format!("revised in change set {part}")))?;
        } else if ty == TypeId::of::<Dimension>() {
            repo.update::<Dimension>(id, |d| d.length = Some(d.length.unwrap_or(0) + 1 + part as u64))?;
        } else {
            repo.update::<KeyValue>(id, |kv| kv.value.push_str(&format!("/rev{part}")))?;
        }
    }
    Ok(count)
}

/// Two commits of one graph that differ in 1 % of its objects.
#[derive(Debug, Clone)]
pub struct DiffFixture {
    /// The repository holding both commits.
    pub repo: Repository,
    /// The first commit.
    pub from: Key,
    /// The second commit, with [`DiffFixture::changed`] objects edited.
    pub to: Key,
    /// The number of objects edited between the two commits.
    pub changed: usize,
}

/// A graph of `objects` objects committed, 1 % of its objects edited, and committed again.
pub fn diff_fixture(registry: &Registry, shape: Shape, objects: usize, seed: u64) -> Result<DiffFixture> {
    diff_fixture_as(registry, REPOSITORY_KEY, shape, objects, seed)
}

/// [`diff_fixture`], in a repository with key `key`.
pub fn diff_fixture_as(registry: &Registry, key: &str, shape: Shape, objects: usize, seed: u64) -> Result<DiffFixture> {
    let (mut repo, from) = committed_as(registry, key, shape, objects, seed)?;
    let changed = change_objects(&mut repo, one_percent(objects), seed, 0)?;
    let to = repo.commit_at("edit 1 %", COMMIT_DATE + 1.0)?;
    Ok(DiffFixture { repo, from, to, changed })
}

/// A repository ready for a merge: `master` and the branch nicknamed [`THEIRS`] each edited a
/// different 1 % of the same base graph and committed; `master` is checked out.
#[derive(Debug, Clone)]
pub struct MergeFixture {
    /// The repository, checked out on `master` (everything loaded).
    pub repo: Repository,
    /// The common ancestor.
    pub base: Key,
    /// The head of `master`.
    pub ours: Key,
    /// The head of [`THEIRS`].
    pub theirs: Key,
    /// The number of objects each side edited.
    pub changed_per_side: usize,
}

/// Builds a [`MergeFixture`] of `objects` objects of `shape`.
pub fn merge_fixture(registry: &Registry, shape: Shape, objects: usize, seed: u64) -> Result<MergeFixture> {
    let (mut repo, base) = committed(registry, shape, objects, seed)?;
    let count = one_percent(objects);
    repo.branch(Some(THEIRS))?;
    change_objects(&mut repo, count, seed, 1)?;
    let theirs = repo.commit_at("their 1 %", COMMIT_DATE + 1.0)?;
    repo.checkout(full_checkout(dsf::repository::MASTER))?;
    change_objects(&mut repo, count, seed, 0)?;
    let ours = repo.commit_at("our 1 %", COMMIT_DATE + 2.0)?;
    Ok(MergeFixture { repo, base, ours, theirs, changed_per_side: count })
}

/// A committed message repository, as the `Structure` envelope carries: an `IonMsg` root whose
/// `message_object` links a dataset, `objects` objects in all (the `IonMsg` included).
///
/// # Panics
///
/// If `objects` is below [`DatasetLayout::MIN_OBJECTS`] + 1.
pub fn message_repository(registry: &Registry, objects: usize, seed: u64) -> Result<Repository> {
    let mut repo = new_repository(registry);
    let dataset = Shape::Dataset.build(&mut repo, objects - 1, seed)?;
    let msg = IonMsg {
        name: Some("datastore push".to_owned()),
        identity: Some("bench".to_owned()),
        message_object: Some(repo.link(dataset)?),
        response_code: None,
        response_body: None,
    };
    let root = repo.create(&msg)?;
    repo.set_root(root)?;
    repo.commit_at("message", COMMIT_DATE)?;
    Ok(repo)
}

/// A `TestObj` whose encoding is exactly `len` bytes: a record with a title, a station number,
/// a reading, a few tags, integers and floats in proportion to `len`, its title padded to size.
///
/// # Panics
///
/// If `len` is below 64 (too small for the fixed part of the record).
pub fn sized_test_obj(len: usize, seed: u64) -> TestObj {
    assert!(len >= 64, "a sized TestObj needs at least 64 bytes, not {len}");
    let mut rng = Rng::new(seed);
    let title = format!("CTD cast {:04} at station {:03}: ", rng.below(10_000), rng.below(1000));
    let mut obj = TestObj {
        string: None,
        integer: Some(rng.below(1 << 20) as i32),
        float: Some(rng.range(-2.0, 35.0) as f32),
        strings: (0..len / 128).map(|i| format!("tag-{i}-{}", rng.hex(6))).collect(),
        integers: (0..len / 32).map(|_| rng.below(100_000) as i32).collect(),
        floats: (0..len / 32).map(|_| rng.range(0.0, 40.0) as f32).collect(),
    };
    let filler = rng.hex(len);
    // The title's length prefix grows by a byte at 128, which can skip the exact size by one:
    // then one more small integer (one byte) closes the gap.
    for extra in 0..2 {
        if extra == 1 {
            obj.integers.push(7);
        }
        for pad in 0..len {
            obj.string = Some(format!("{title}{}", &filler[..pad]));
            match obj.encoded_len() {
                n if n == len => return obj,
                n if n > len => break,
                _ => {}
            }
        }
    }
    panic!("no TestObj of exactly {len} bytes");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_layout_counts_exactly() {
        for objects in (DatasetLayout::MIN_OBJECTS..600).chain([1000, 10_000, 100_000]) {
            assert_eq!(DatasetLayout::for_objects(objects).objects(), objects, "layout of {objects}");
        }
    }

    #[test]
    fn generated_graphs_have_exact_object_counts() {
        let registry = Registry::builtin();
        for shape in Shape::ALL {
            for objects in [shape.min_objects(), 57, 1000, 10_000] {
                let (repo, _) = committed(&registry, shape, objects, DEFAULT_SEED).unwrap();
                // Every object is one element, plus the commit.
                assert_eq!(repo.elements().len(), objects + 1, "{} of {objects}", shape.name());
                assert_eq!(repo.workspace_len(), objects, "{} of {objects}", shape.name());
            }
        }
    }

    #[test]
    fn generation_is_deterministic() {
        let registry = Registry::builtin();
        for shape in Shape::ALL {
            let (_, a) = committed(&registry, shape, 500, 7).unwrap();
            let (_, b) = committed(&registry, shape, 500, 7).unwrap();
            let (_, c) = committed(&registry, shape, 500, 8).unwrap();
            assert_eq!(a, b);
            assert_ne!(a, c);
        }
    }

    #[test]
    fn diff_sees_the_changed_objects() {
        let registry = Registry::builtin();
        for shape in Shape::ALL {
            let f = diff_fixture(&registry, shape, 1000, DEFAULT_SEED).unwrap();
            assert_eq!(f.changed, 10);
            let changes = f.repo.diff(f.from, f.to).unwrap();
            assert!(!changes.is_empty(), "{}", shape.name());
            assert!(changes.len() >= f.changed, "{}: {} changes", shape.name(), changes.len());
        }
    }

    #[test]
    fn merge_fixture_merges_without_conflicts() {
        let registry = Registry::builtin();
        for shape in Shape::ALL {
            let mut f = merge_fixture(&registry, shape, 1000, DEFAULT_SEED).unwrap();
            let outcome = f.repo.merge(THEIRS, dsf::MergePolicy::Manual).unwrap();
            assert_eq!(outcome, dsf::MergeOutcome::Merged { conflicts: Vec::new() }, "{}", shape.name());
            let merged = f.repo.commit_at("merge", COMMIT_DATE + 3.0).unwrap();
            // The merge holds both sides' edits: it differs from each parent in one side's.
            let from_ours = f.repo.diff(f.ours, merged).unwrap();
            let from_theirs = f.repo.diff(f.theirs, merged).unwrap();
            assert!(!from_ours.is_empty() && !from_theirs.is_empty(), "{}", shape.name());
        }
    }

    #[test]
    fn message_repository_packs_and_unpacks() {
        let registry = Registry::builtin();
        let repo = message_repository(&registry, 1000, DEFAULT_SEED).unwrap();
        let packed = dsf::structure::pack(&repo, &[]).unwrap();
        let env = dsf::structure::Envelope::decode(&registry, &packed).unwrap();
        assert_eq!(env.items.len() + 1, 1000);
        let back = dsf::structure::unpack(&registry, &packed, &[]).unwrap();
        assert_eq!(back.workspace_len(), 1000);
    }

    #[test]
    fn sized_test_objects_have_the_exact_size() {
        for len in 64..=4096 {
            assert_eq!(sized_test_obj(len, DEFAULT_SEED).encoded_len(), len);
        }
    }
}
