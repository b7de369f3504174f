//! Property tests of the repository: commit and checkout of random object graphs, edits and
//! their propagation, merges and treeish resolution.
//!
//! A random graph is a DAG of `Person`, `KeyValue`, `TestObj` (leaves), `ListObj` and
//! `AddressLink` (linking) objects, with shared children. The model is positional: a node of
//! the model is one occurrence in the generated DAG, and two nodes whose expanded contents are
//! equal are expected to be one object of the repository (content addressing).

use std::collections::{BTreeSet, HashMap, HashSet};

use dsf::proto::net::ooici::core::link::CasRef;
use dsf::proto::net::ooici::play::{AddressLink, KeyValue, ListObj, Person, TestObj, person};
use dsf::{
    Checkout, Conflict, Current, Error, Key, MergeOutcome, MergePolicy, ObjectId, ObjectRef, Repository, Status, TypeId,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use prost::Message as _;

use crate::common;

type TResult<T = ()> = Result<T, TestCaseError>;

fn fail(msg: impl Into<String>) -> TestCaseError {
    TestCaseError::fail(msg.into())
}

/// Cases per property: modest, so the module stays fast in debug builds. Failures are not
/// persisted to files: the minimal cases found are kept below as ordinary tests.
fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(64) }
}

// ----- the model --------------------------------------------------------------------------------

/// The content of one model node; links are indices of other nodes.
#[derive(Debug, Clone, PartialEq)]
enum Content {
    Person(Person),
    KeyValue(KeyValue),
    TestObj(TestObj),
    List(Vec<usize>),
    Addr { person: Vec<usize>, owner: Option<usize>, title: Option<String> },
}

impl Content {
    fn type_id(&self) -> TypeId {
        match self {
            Content::Person(_) => TypeId::of::<Person>(),
            Content::KeyValue(_) => TypeId::of::<KeyValue>(),
            Content::TestObj(_) => TypeId::of::<TestObj>(),
            Content::List(_) => TypeId::of::<ListObj>(),
            Content::Addr { .. } => TypeId::of::<AddressLink>(),
        }
    }

    /// Every link, in field order, with multiplicity.
    fn links(&self) -> Vec<usize> {
        match self {
            Content::List(items) => items.clone(),
            Content::Addr { person, owner, .. } => person.iter().copied().chain(owner.iter().copied()).collect(),
            _ => Vec::new(),
        }
    }
}

/// A random object graph: `nodes[root]` is the root; `nodes[shared]` is linked from two
/// different parents (once from one and twice from the other).
#[derive(Debug, Clone)]
struct Graph {
    nodes: Vec<Content>,
    root: usize,
    shared: usize,
}

impl Graph {
    fn is_leaf(&self, i: usize) -> bool {
        self.nodes[i].links().is_empty()
    }

    /// An equivalence class per node: equal classes iff equal expanded content (what content
    /// addressing makes one object).
    fn classes(&self) -> Vec<usize> {
        fn go(g: &Graph, i: usize, memo: &mut Vec<Option<usize>>, intern: &mut HashMap<String, usize>) -> usize {
            if let Some(c) = memo[i] {
                return c;
            }
            let canon = match &g.nodes[i] {
                Content::Person(p) => format!("P{:?}", p.encode_to_vec()),
                Content::KeyValue(kv) => format!("K{:?}", kv.encode_to_vec()),
                Content::TestObj(t) => format!("T{:?}", t.encode_to_vec()),
                Content::List(items) => {
                    let items: Vec<usize> = items.iter().map(|&c| go(g, c, memo, intern)).collect();
                    format!("L{items:?}")
                }
                Content::Addr { person, owner, title } => {
                    let person: Vec<usize> = person.iter().map(|&c| go(g, c, memo, intern)).collect();
                    let owner = owner.map(|c| go(g, c, memo, intern));
                    format!("A{person:?}{owner:?}{title:?}")
                }
            };
            let next = intern.len();
            let c = *intern.entry(canon).or_insert(next);
            memo[i] = Some(c);
            c
        }
        let mut memo = vec![None; self.nodes.len()];
        let mut intern = HashMap::new();
        (0..self.nodes.len()).map(|i| go(self, i, &mut memo, &mut intern)).collect()
    }

    /// The number of objects a tree expansion (no sharing at all) of the graph has.
    fn tree_size(&self) -> u64 {
        fn go(g: &Graph, i: usize, memo: &mut HashMap<usize, u64>) -> u64 {
            if let Some(&n) = memo.get(&i) {
                return n;
            }
            let n = g.nodes[i].links().iter().fold(1u64, |acc, &c| acc.saturating_add(go(g, c, memo)));
            memo.insert(i, n);
            n
        }
        go(self, self.root, &mut HashMap::new())
    }
}

// ----- strategies -------------------------------------------------------------------------------

/// Short strings over a tiny alphabet, so that equal objects (one element) are frequent.
fn text() -> impl Strategy<Value = String> {
    "[ab]{0,2}"
}

/// Finite floats, including `-0.0` (which encodes differently from `0.0`).
fn finite_float() -> impl Strategy<Value = f32> {
    prop_oneof![8 => (-4i32..4).prop_map(|x| x as f32 * 0.5), 1 => Just(-0.0f32), 1 => Just(f32::INFINITY)]
}

fn person_strategy() -> impl Strategy<Value = Person> {
    let phone = (proptest::option::of(text()), proptest::option::of(0i32..3))
        .prop_map(|(number, r#type)| person::PhoneNumber { number, r#type });
    (
        proptest::option::of(text()),
        proptest::option::of(-2i32..3),
        proptest::option::of(text()),
        prop::collection::vec(phone, 0..3),
    )
        .prop_map(|(name, id, email, phone)| Person { name, id, email, phone })
}

fn test_obj_strategy(float: BoxedStrategy<f32>) -> impl Strategy<Value = TestObj> {
    (
        proptest::option::of(text()),
        proptest::option::of(-2i32..3),
        proptest::option::of(float.clone()),
        prop::collection::vec(text(), 0..3),
        prop::collection::vec(-2i32..3, 0..3),
        prop::collection::vec(float, 0..3),
    )
        .prop_map(|(string, integer, float, strings, integers, floats)| TestObj {
            string,
            integer,
            float,
            strings,
            integers,
            floats,
        })
}

fn leaf_strategy(float: BoxedStrategy<f32>) -> impl Strategy<Value = Content> {
    prop_oneof![
        person_strategy().prop_map(Content::Person),
        (text(), text()).prop_map(|(key, value)| Content::KeyValue(KeyValue { key, value })),
        test_obj_strategy(float).prop_map(Content::TestObj),
    ]
}

/// One generated node; links are indices into the nodes generated before it.
#[derive(Debug, Clone)]
enum Spec {
    Leaf(Content),
    List(Vec<Index>),
    Addr(Vec<Index>, Option<Index>, Option<String>),
}

fn spec_strategy(float: BoxedStrategy<f32>) -> impl Strategy<Value = Spec> {
    prop_oneof![
        3 => leaf_strategy(float).prop_map(Spec::Leaf),
        2 => prop::collection::vec(any::<Index>(), 0..4).prop_map(Spec::List),
        2 => (prop::collection::vec(any::<Index>(), 0..3), proptest::option::of(any::<Index>()), proptest::option::of(text()))
            .prop_map(|(p, o, t)| Spec::Addr(p, o, t)),
    ]
}

/// Random DAGs. Every node is reachable from the root; one node is shared by two distinct
/// parents (`ListObj[s]` and `ListObj[s, s]`), and random links add more sharing.
fn graph_with(float: BoxedStrategy<f32>) -> impl Strategy<Value = Graph> {
    (
        prop::collection::vec(spec_strategy(float), 1..10),
        any::<Index>(),
        any::<bool>(),
        prop::collection::vec(any::<Index>(), 0..3),
        proptest::option::of(any::<Index>()),
        proptest::option::of(text()),
    )
        .prop_map(|(specs, shared, root_is_addr, root_extra, root_owner, root_title)| {
            let mut nodes = Vec::new();
            for (i, spec) in specs.into_iter().enumerate() {
                let pick = |x: &Index| (i > 0).then(|| x.index(i));
                nodes.push(match spec {
                    Spec::Leaf(c) => c,
                    Spec::List(items) => Content::List(items.iter().filter_map(pick).collect()),
                    Spec::Addr(p, o, t) => Content::Addr {
                        person: p.iter().filter_map(pick).collect(),
                        owner: o.as_ref().and_then(pick),
                        title: t,
                    },
                });
            }
            let s = shared.index(nodes.len());
            nodes.push(Content::List(vec![s]));
            nodes.push(Content::List(vec![s, s]));
            let n = nodes.len();
            let mut has_parent = vec![false; n];
            for c in &nodes {
                for l in c.links() {
                    has_parent[l] = true;
                }
            }
            let mut top: Vec<usize> = (0..n).filter(|&i| !has_parent[i]).collect();
            top.extend(root_extra.iter().map(|x| x.index(n)));
            nodes.push(if root_is_addr {
                Content::Addr { person: top, owner: root_owner.map(|x| x.index(n)), title: root_title }
            } else {
                Content::List(top)
            });
            Graph { root: nodes.len() - 1, nodes, shared: s }
        })
}

fn graph() -> impl Strategy<Value = Graph> {
    graph_with(finite_float().boxed())
}

/// A graph of one leaf object.
fn leaf_graph() -> impl Strategy<Value = Graph> {
    leaf_strategy(finite_float().boxed()).prop_map(|c| Graph { nodes: vec![c], root: 0, shared: 0 })
}

/// Floats including NaN and both zeros.
fn special_float() -> impl Strategy<Value = f32> {
    prop_oneof![1 => finite_float(), 1 => Just(f32::NAN), 1 => Just(0.0f32), 1 => Just(-0.0f32)]
}

/// Graphs whose floats include NaN and both zeros.
fn special_graph() -> impl Strategy<Value = Graph> {
    graph_with(special_float().boxed())
}

// ----- building and checking graphs in a repository ---------------------------------------------

fn link_of(repo: &Repository, ids: &HashMap<usize, ObjectId>, i: usize) -> TResult<CasRef> {
    let id = *ids.get(&i).ok_or_else(|| fail(format!("node {i} not built")))?;
    Ok(repo.link(id)?)
}

fn create_node(repo: &mut Repository, g: &Graph, i: usize, ids: &HashMap<usize, ObjectId>) -> TResult<ObjectId> {
    Ok(match &g.nodes[i] {
        Content::Person(p) => repo.create(p)?,
        Content::KeyValue(kv) => repo.create(kv)?,
        Content::TestObj(t) => repo.create(t)?,
        Content::List(items) => {
            let items = items.iter().map(|&c| link_of(repo, ids, c)).collect::<TResult<Vec<_>>>()?;
            repo.create(&ListObj { items })?
        }
        Content::Addr { person, owner, title } => {
            let person = person.iter().map(|&c| link_of(repo, ids, c)).collect::<TResult<Vec<_>>>()?;
            let owner = owner.map(|c| link_of(repo, ids, c)).transpose()?;
            repo.create(&AddressLink { person, owner, title: title.clone() })?
        }
    })
}

/// Creates every node bottom-up (a depth-first post-order from the root, children in link
/// order or reversed), one object per model node. Returns the model node → object map.
fn build(repo: &mut Repository, g: &Graph, reversed: bool) -> TResult<HashMap<usize, ObjectId>> {
    fn go(repo: &mut Repository, g: &Graph, i: usize, reversed: bool, ids: &mut HashMap<usize, ObjectId>) -> TResult {
        if ids.contains_key(&i) {
            return Ok(());
        }
        let mut links = g.nodes[i].links();
        if reversed {
            links.reverse();
        }
        for c in links {
            go(repo, g, c, reversed, ids)?;
        }
        let id = create_node(repo, g, i, ids)?;
        ids.insert(i, id);
        Ok(())
    }
    let mut ids = HashMap::new();
    go(repo, g, g.root, reversed, &mut ids)?;
    Ok(ids)
}

/// Creates the tree expansion of the graph: a new object for every link occurrence, so nothing
/// is shared in the workspace. Returns the root object.
fn build_tree(repo: &mut Repository, g: &Graph, i: usize) -> TResult<ObjectId> {
    let mut ids = HashMap::new();
    let mut links = Vec::new();
    for (n, c) in g.nodes[i].links().into_iter().enumerate() {
        let id = build_tree(repo, g, c)?;
        links.push(repo.link(id)?);
        ids.insert(n, id);
    }
    Ok(match &g.nodes[i] {
        Content::List(_) => repo.create(&ListObj { items: links })?,
        Content::Addr { person, owner, title } => {
            let owner = owner.map(|_| links[person.len()].clone());
            links.truncate(person.len());
            repo.create(&AddressLink { person: links, owner, title: title.clone() })?
        }
        _ => create_node(repo, g, i, &ids)?,
    })
}

/// Builds the graph in a new workspace, sets the root and commits it; returns the commit.
fn build_and_commit(repo: &mut Repository, g: &Graph, reversed: bool) -> TResult<Key> {
    let ids = build(repo, g, reversed)?;
    repo.set_root(ids[&g.root])?;
    Ok(repo.commit("build")?)
}

fn root_key(repo: &Repository, commit: Key) -> TResult<Key> {
    Ok(repo.commit_info(commit)?.root.ok_or_else(|| fail("commit without a root"))?.key)
}

fn check_link(
    repo: &Repository,
    g: &Graph,
    link: &CasRef,
    child: usize,
    stack: &mut Vec<(usize, usize, ObjectId)>,
    parent: usize,
) -> TResult {
    let cid =
        repo.resolve(link).ok_or_else(|| fail(format!("link of node {parent} to node {child} does not resolve")))?;
    let ty = g.nodes[child].type_id();
    prop_assert_eq!(
        (link.r#type.object_id, link.r#type.version),
        (ty.object_id, ty.version),
        "link type of node {} -> {}",
        parent,
        child
    );
    prop_assert_eq!(link.isleaf, g.is_leaf(child), "isleaf of the link of node {} -> {}", parent, child);
    stack.push((parent, child, cid));
    Ok(())
}

/// Compares the repository's workspace (committed or checked out: every object has a key)
/// with the model: the same content per node, the same links with their multiplicity, and one
/// object per class of equal nodes (shared nodes are one object). With `fresh` (just checked
/// out), the workspace holds exactly the objects reachable from the root. Returns the model node
/// → object map.
fn check_loaded(repo: &Repository, g: &Graph, fresh: bool) -> TResult<HashMap<usize, ObjectId>> {
    let root = repo.root().ok_or_else(|| fail("no root object"))?;
    let mut map: HashMap<usize, ObjectId> = HashMap::new();
    let mut edges: Vec<(usize, usize)> = Vec::new();
    let mut stack = vec![(usize::MAX, g.root, root)];
    while let Some((parent, gi, id)) = stack.pop() {
        if parent != usize::MAX {
            edges.push((parent, gi));
        }
        if let Some(&prev) = map.get(&gi) {
            prop_assert_eq!(prev, id, "node {} reached as two objects", gi);
            continue;
        }
        map.insert(gi, id);
        prop_assert_eq!(repo.type_of(id)?, g.nodes[gi].type_id(), "type of node {}", gi);
        let key = repo.object_key(id)?.ok_or_else(|| fail(format!("node {gi} has no key")))?;
        prop_assert_eq!(repo.object_by_key(&key), Some(id), "object_by_key of node {}", gi);
        match &g.nodes[gi] {
            Content::Person(p) => prop_assert_eq!(repo.get::<Person>(id)?, p.clone(), "node {}", gi),
            Content::KeyValue(kv) => prop_assert_eq!(repo.get::<KeyValue>(id)?, kv.clone(), "node {}", gi),
            Content::TestObj(t) => {
                let got = repo.get::<TestObj>(id)?;
                prop_assert_eq!(got.encode_to_vec(), t.encode_to_vec(), "node {}: {:?} vs {:?}", gi, got, t);
            }
            Content::List(items) => {
                let l: ListObj = repo.get(id)?;
                prop_assert_eq!(l.items.len(), items.len(), "items of node {}", gi);
                for (link, &c) in l.items.iter().zip(items) {
                    check_link(repo, g, link, c, &mut stack, gi)?;
                }
            }
            Content::Addr { person, owner, title } => {
                let a: AddressLink = repo.get(id)?;
                prop_assert_eq!(&a.title, title, "title of node {}", gi);
                prop_assert_eq!(a.person.len(), person.len(), "persons of node {}", gi);
                for (link, &c) in a.person.iter().zip(person) {
                    check_link(repo, g, link, c, &mut stack, gi)?;
                }
                match (&a.owner, owner) {
                    (Some(link), Some(c)) => check_link(repo, g, link, *c, &mut stack, gi)?,
                    (None, None) => {}
                    (got, want) => return Err(fail(format!("owner of node {gi}: {got:?} vs node {want:?}"))),
                }
            }
        }
    }
    // Equal classes are one object, different classes different objects.
    let classes = g.classes();
    for (&i, &a) in &map {
        for (&j, &b) in &map {
            prop_assert_eq!(classes[i] == classes[j], a == b, "nodes {} and {} (objects {:?}, {:?})", i, j, a, b);
        }
    }
    // The workspace's children and parents agree with the links.
    let mut children: HashMap<ObjectId, BTreeSet<ObjectId>> = map.values().map(|&id| (id, BTreeSet::new())).collect();
    let mut parents = children.clone();
    for &(p, c) in &edges {
        children.get_mut(&map[&p]).expect("mapped").insert(map[&c]);
        parents.get_mut(&map[&c]).expect("mapped").insert(map[&p]);
    }
    for (&id, want) in &children {
        let got: BTreeSet<ObjectId> = repo.children(id)?.into_iter().collect();
        prop_assert_eq!(&got, want, "children of {:?}", id);
        let got: BTreeSet<ObjectId> = repo.parents(id)?.into_iter().collect();
        prop_assert_eq!(&got, &parents[&id], "parents of {:?}", id);
    }
    if fresh {
        prop_assert_eq!(repo.workspace_len(), children.len(), "objects in a fresh checkout");
    }
    Ok(map)
}

/// The commit's root reference agrees with the workspace root and the model.
fn check_commit_root(repo: &Repository, commit: Key, g: &Graph) -> TResult<Key> {
    let root = repo.root().ok_or_else(|| fail("no root"))?;
    let key = repo.object_key(root)?.ok_or_else(|| fail("root has no key after commit"))?;
    let want = ObjectRef { key, ty: g.nodes[g.root].type_id(), isleaf: g.is_leaf(g.root) };
    prop_assert_eq!(repo.commit_info(commit)?.root, Some(want));
    Ok(key)
}

// ----- edits ----------------------------------------------------------------------------------

/// Which side of a merge makes an edit: the values written differ between sides, so the same
/// field edited on both sides is a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

impl Side {
    fn tag(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }

    fn delta(self) -> i32 {
        match self {
            Side::A => 1,
            Side::B => 2,
        }
    }

    /// A float differing (bitwise) from `old`; `special` writes signed zeros and NaN.
    fn float(self, old: Option<f32>, special: bool) -> f32 {
        let candidates = match (self, special) {
            (Side::A, false) => [1.5f32, 2.5],
            (Side::B, false) => [3.5f32, 4.5],
            (Side::A, true) => [-0.0f32, f32::NAN],
            (Side::B, true) => [0.0f32, 1.0],
        };
        if old.map(f32::to_bits) == Some(candidates[0].to_bits()) { candidates[1] } else { candidates[0] }
    }
}

/// An edit: which reachable node (among the eligible ones) and which field (modulo the fields
/// the type has); `special_float` edits of float fields write signed zeros and NaN.
#[derive(Debug, Clone, Copy)]
struct Edit {
    /// Modulo the number of eligible nodes.
    target: usize,
    /// Modulo the number of fields of the target's type.
    field: usize,
    special_float: bool,
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    (0usize..1024, 0usize..64).prop_map(|(target, field)| Edit { target, field, special_float: false })
}

fn special_float_edit_strategy() -> impl Strategy<Value = Edit> {
    (0usize..1024, 0usize..64, any::<bool>()).prop_map(|(target, field, special_float)| Edit {
        target,
        field,
        special_float,
    })
}

fn append(s: &mut Option<String>, tag: &str) {
    s.get_or_insert_with(String::new).push_str(tag);
}

fn edit_person(p: &mut Person, field: usize, side: Side) -> &'static str {
    match field % 4 {
        0 => {
            append(&mut p.name, side.tag());
            "name"
        }
        1 => {
            p.id = Some(p.id.unwrap_or(0).wrapping_add(side.delta()));
            if p.id == Some(0) {
                p.id = None;
            }
            "id"
        }
        2 => {
            append(&mut p.email, side.tag());
            "email"
        }
        _ => {
            p.phone.push(person::PhoneNumber { number: Some(side.tag().into()), r#type: None });
            "phone"
        }
    }
}

fn edit_key_value(kv: &mut KeyValue, field: usize, side: Side) -> &'static str {
    match field % 2 {
        0 => {
            kv.key.push_str(side.tag());
            "key"
        }
        _ => {
            kv.value.push_str(side.tag());
            "value"
        }
    }
}

fn edit_test_obj(t: &mut TestObj, edit: Edit, side: Side) -> &'static str {
    match edit.field % 6 {
        0 => {
            append(&mut t.string, side.tag());
            "string"
        }
        1 => {
            t.integer = Some(t.integer.unwrap_or(0).wrapping_add(side.delta()));
            "integer"
        }
        2 => {
            t.float = Some(side.float(t.float, edit.special_float));
            "float"
        }
        3 => {
            t.strings.push(side.tag().into());
            "strings"
        }
        4 => {
            t.integers.push(side.delta() * 100);
            "integers"
        }
        _ => {
            t.floats.push(side.float(None, edit.special_float));
            "floats"
        }
    }
}

fn field_name(c: &Content, field: usize) -> &'static str {
    match c {
        Content::Person(_) => ["name", "id", "email", "phone"][field % 4],
        Content::KeyValue(_) => ["key", "value"][field % 2],
        Content::TestObj(_) => ["string", "integer", "float", "strings", "integers", "floats"][field % 6],
        Content::Addr { .. } => "title",
        Content::List(_) => "items",
    }
}

/// The node an edit targets among `candidates` (sorted); `scalar_only` leaves out `ListObj`,
/// whose only edit adds a link to a new `KeyValue`.
fn edit_target(g: &Graph, candidates: impl IntoIterator<Item = usize>, edit: Edit, scalar_only: bool) -> Option<usize> {
    let mut eligible: Vec<usize> =
        candidates.into_iter().filter(|&i| !(scalar_only && matches!(g.nodes[i], Content::List(_)))).collect();
    eligible.sort_unstable();
    eligible.dedup();
    (!eligible.is_empty()).then(|| eligible[edit.target % eligible.len()])
}

/// Applies an edit to the model nodes `members` (one object); a `ListObj` edit appends the new
/// `KeyValue` node and returns its index.
fn edit_model(g: &mut Graph, members: &[usize], edit: Edit, side: Side) -> Option<usize> {
    let new = match g.nodes[members[0]] {
        Content::List(_) => {
            g.nodes.push(Content::KeyValue(new_key_value(edit, side)));
            Some(g.nodes.len() - 1)
        }
        _ => None,
    };
    for &m in members {
        match &mut g.nodes[m] {
            Content::Person(p) => {
                edit_person(p, edit.field, side);
            }
            Content::KeyValue(kv) => {
                edit_key_value(kv, edit.field, side);
            }
            Content::TestObj(t) => {
                edit_test_obj(t, edit, side);
            }
            Content::Addr { title, .. } => append(title, side.tag()),
            Content::List(items) => items.push(new.expect("pushed")),
        }
    }
    new
}

fn new_key_value(edit: Edit, side: Side) -> KeyValue {
    KeyValue { key: side.tag().into(), value: ["", "a", "b"][edit.field % 3].into() }
}

/// Applies the same edit to the object `id` (of the type of `c`) through `update`; a `ListObj`
/// edit creates the new `KeyValue` and returns it.
fn edit_repo(repo: &mut Repository, id: ObjectId, c: &Content, edit: Edit, side: Side) -> TResult<Option<ObjectId>> {
    match c {
        Content::Person(_) => repo.update::<Person>(id, |p| {
            edit_person(p, edit.field, side);
        })?,
        Content::KeyValue(_) => repo.update::<KeyValue>(id, |kv| {
            edit_key_value(kv, edit.field, side);
        })?,
        Content::TestObj(_) => repo.update::<TestObj>(id, |t| {
            edit_test_obj(t, edit, side);
        })?,
        Content::Addr { .. } => repo.update::<AddressLink>(id, |a| append(&mut a.title, side.tag()))?,
        Content::List(_) => {
            let new_id = repo.create(&new_key_value(edit, side))?;
            let link = repo.link(new_id)?;
            repo.update::<ListObj>(id, |l| l.items.push(link))?;
            return Ok(Some(new_id));
        }
    }
    Ok(None)
}

/// Applies an edit to the repository and to the model (to every model node that is the same
/// object). `ids` maps the model nodes to their objects; the target is chosen among them.
/// Returns the target node and its object, or `None` if no node is eligible.
fn apply_edit(
    repo: &mut Repository,
    g: &mut Graph,
    ids: &mut HashMap<usize, ObjectId>,
    edit: Edit,
    side: Side,
    scalar_only: bool,
) -> TResult<Option<(usize, ObjectId)>> {
    let Some(target) = edit_target(g, ids.keys().copied(), edit, scalar_only) else { return Ok(None) };
    let id = ids[&target];
    let mut members: Vec<usize> = ids.iter().filter(|&(_, &o)| o == id).map(|(&i, _)| i).collect();
    members.sort_unstable();
    let content = g.nodes[target].clone();
    let new_id = edit_repo(repo, id, &content, edit, side)?;
    let new = edit_model(g, &members, edit, side);
    if let (Some(n), Some(o)) = (new, new_id) {
        ids.insert(n, o);
    }
    Ok(Some((target, id)))
}

/// The model nodes whose object is `id` or links (transitively) to it.
fn ancestors_or_self(g: &Graph, ids: &HashMap<usize, ObjectId>, id: ObjectId) -> HashSet<ObjectId> {
    let mut found: HashSet<ObjectId> = HashSet::from([id]);
    loop {
        let before = found.len();
        for (&i, &o) in ids.iter().filter(|&(&i, _)| i < g.nodes.len()) {
            if g.nodes[i].links().iter().any(|c| ids.get(c).is_some_and(|co| found.contains(co))) {
                found.insert(o);
            }
        }
        if found.len() == before {
            return found;
        }
    }
}

// ----- 1. commit and checkout -------------------------------------------------------------------

fn commit_checkout_roundtrip(g: &Graph) -> TResult {
    let mut repo = common::repo();
    let c1 = build_and_commit(&mut repo, g, false)?;
    let k1 = check_commit_root(&repo, c1, g)?;
    check_loaded(&repo, g, false)?;

    repo.checkout(Checkout::branch("master"))?;
    prop_assert_eq!(repo.status(), Status::UpToDate);
    check_loaded(&repo, g, true)?;
    prop_assert_eq!(repo.object_key(repo.root().expect("root"))?, Some(k1));

    // The same graph built again in the same workspace (in another creation order) is one
    // object per class again, with the same root key.
    let c2 = build_and_commit(&mut repo, g, true)?;
    prop_assert_ne!(c1, c2);
    prop_assert_eq!(check_commit_root(&repo, c2, g)?, k1);
    check_loaded(&repo, g, false)?;

    // The first commit, by id: a detached, read-only checkout of the same graph.
    repo.checkout(Checkout::branch("master").commit(c1))?;
    prop_assert_eq!(repo.current(), Some(&Current::Detached(c1)));
    check_loaded(&repo, g, true)?;
    repo.checkout(Checkout::branch("master"))?;
    check_loaded(&repo, g, true)?;

    // An independent repository, and the graph without any sharing, give the same root key.
    let mut other = common::repo();
    let c3 = build_and_commit(&mut other, g, true)?;
    prop_assert_eq!(root_key(&other, c3)?, k1);
    if g.tree_size() <= 200 {
        let mut tree = common::repo();
        let root = build_tree(&mut tree, g, g.root)?;
        tree.set_root(root)?;
        let c4 = tree.commit("tree")?;
        prop_assert_eq!(root_key(&tree, c4)?, k1);
        check_loaded(&tree, g, false)?;
        tree.checkout(Checkout::branch("master"))?;
        check_loaded(&tree, g, true)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Commit then checkout (of the branch, and of the commit by id) reproduces any random
    /// graph: content per node, links with their multiplicity, shared nodes as one object.
    /// Building the same graph again, in another repository, or without sharing gives the same
    /// root key.
    #[test]
    fn commit_then_checkout_reproduces_the_graph(g in prop_oneof![9 => graph(), 1 => leaf_graph()]) {
        commit_checkout_roundtrip(&g)?;
    }
}

// ----- 2. edits -------------------------------------------------------------------------------

/// Checks out `g` (committed on master), applies `edits`, and checks the modified marks, the
/// keys after commit and the new checkout. With `shared`, the first edit targets the shared
/// child.
fn edit_propagation(g: &Graph, edits: &[Edit], shared: bool) -> TResult {
    let mut repo = common::repo();
    let c1 = build_and_commit(&mut repo, g, false)?;
    repo.checkout(Checkout::branch("master"))?;
    let mut ids = check_loaded(&repo, g, true)?;
    let keys_before: HashMap<usize, Key> =
        ids.iter().map(|(&i, &id)| Ok((i, repo.object_key(id)?.expect("checked out")))).collect::<TResult<_>>()?;

    let mut edited = g.clone();
    let mut modified: HashSet<ObjectId> = HashSet::new();
    for (n, &edit) in edits.iter().enumerate() {
        let id = if shared && n == 0 {
            // Only the shared node is eligible.
            let id = ids[&g.shared];
            let parents: BTreeSet<ObjectId> = repo.parents(id)?.into_iter().collect();
            prop_assert!(parents.len() >= 2, "the shared node has {} parents", parents.len());
            let mut only: HashMap<usize, ObjectId> =
                ids.iter().filter(|&(_, &o)| o == id).map(|(&i, &o)| (i, o)).collect();
            let edited_id = apply_edit(&mut repo, &mut edited, &mut only, edit, Side::A, false)?.expect("eligible").1;
            ids.extend(only);
            edited_id
        } else {
            apply_edit(&mut repo, &mut edited, &mut ids, edit, Side::A, false)?.expect("eligible").1
        };
        // The edited object and all its ancestors are modified, nothing else.
        modified.extend(ancestors_or_self(&edited, &ids, id));
        for (&i, &o) in ids.iter().filter(|&(&i, _)| i < g.nodes.len()) {
            prop_assert_eq!(repo.is_modified(o)?, modified.contains(&o), "node {} modified after edit {}", i, n);
        }
        prop_assert_eq!(repo.status(), Status::Modified);
    }

    let c2 = repo.commit("edit")?;
    check_commit_root(&repo, c2, &edited)?;
    for (&i, &o) in ids.iter().filter(|&(&i, _)| i < g.nodes.len()) {
        let after = repo.object_key(o)?.ok_or_else(|| fail(format!("node {i} has no key after commit")))?;
        if modified.contains(&o) {
            prop_assert_ne!(after, keys_before[&i], "node {} (edited or an ancestor) kept its key", i);
        } else {
            prop_assert_eq!(after, keys_before[&i], "node {} (unrelated) changed key", i);
        }
    }
    check_loaded(&repo, &edited, false)?;

    repo.checkout(Checkout::branch("master"))?;
    let map = check_loaded(&repo, &edited, true)?;
    if shared {
        // Every parent of the shared child reaches it. An edit may make objects equal, and equal
        // objects are one object, so compare with the model's parents of that object.
        let s = map[&g.shared];
        let parents: BTreeSet<ObjectId> = repo.parents(s)?.into_iter().collect();
        let expected: BTreeSet<ObjectId> = edited
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.links().iter().any(|j| map[j] == s))
            .map(|(i, _)| map[&i])
            .collect();
        prop_assert_eq!(&parents, &expected);
        for p in parents {
            prop_assert!(repo.children(p)?.contains(&s));
        }
    }
    prop_assert!(!repo.diff(c1, c2)?.is_empty(), "the edit shows in the diff");
    repo.checkout(Checkout::branch("master").commit(c1))?;
    check_loaded(&repo, g, true)?;
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Editing random nodes of a committed graph marks each edited object and all its
    /// ancestors modified (and nothing else), keeps the keys of unrelated subgraphs on commit,
    /// and the new commit's checkout shows the edits.
    #[test]
    fn edit_marks_ancestors_and_keeps_unrelated_keys(g in graph(), edits in prop::collection::vec(edit_strategy(), 1..4)) {
        edit_propagation(&g, &edits, false)?;
    }

    /// The same, editing first the child shared by two parents: both parents (and their
    /// ancestors) are modified and both see the edit after checkout.
    #[test]
    fn edit_of_a_shared_child_shows_through_both_parents(g in graph(), edits in prop::collection::vec(edit_strategy(), 1..3)) {
        edit_propagation(&g, &edits, true)?;
    }
}

// ----- 3. merges ------------------------------------------------------------------------------

/// A repository with `g` committed on master (the base), branch `a` with `edits_a` and branch
/// `b` with `edits_b`, each committed (also when no edit applied); `b` is dated later. With
/// `disjoint`, b leaves out the edits of a (base object, field) that a edited.
struct Fork {
    repo: Repository,
    a: Graph,
    b: Graph,
    /// Both sides' edits on the base (meaningful with `disjoint`).
    both: Graph,
    head_a: Key,
    head_b: Key,
}

fn fork(
    g: &Graph,
    edits_a: &[Edit],
    edits_b: &[Edit],
    scalar_only: bool,
    disjoint: bool,
    b_values: Side,
) -> TResult<Fork> {
    let mut repo = common::repo();
    let ids = build(&mut repo, g, false)?;
    repo.set_root(ids[&g.root])?;
    repo.commit_at("base", 1000.0)?;
    let classes = g.classes();
    let mut both = g.clone();
    let mut touched: HashSet<(usize, &'static str)> = HashSet::new();
    let mut side = |name: &str, edits: &[Edit], s: Side, date: f64| -> TResult<(Graph, Key)> {
        repo.checkout(Checkout::branch("master"))?;
        repo.branch(Some(name))?;
        repo.checkout(Checkout::branch(name))?;
        let mut ids = check_loaded(&repo, g, true)?;
        let mut model = g.clone();
        for &e in edits {
            let Some(target) = edit_target(&model, ids.keys().copied(), e, scalar_only) else { continue };
            let field = (
                classes.get(target).copied().unwrap_or(usize::MAX - target),
                field_name(&model.nodes[target], e.field),
            );
            if disjoint {
                if name == "a" {
                    touched.insert(field);
                } else if touched.contains(&field) {
                    continue;
                }
            }
            apply_edit(&mut repo, &mut model, &mut ids, e, s, scalar_only)?;
            if target < g.nodes.len() {
                let members: Vec<usize> = (0..g.nodes.len()).filter(|&i| classes[i] == classes[target]).collect();
                edit_model(&mut both, &members, e, s);
            }
        }
        let head = repo.commit_at(name, date)?;
        check_commit_root(&repo, head, &model)?;
        Ok((model, head))
    };
    let (a, head_a) = side("a", edits_a, Side::A, 2000.0)?;
    let (b, head_b) = side("b", edits_b, b_values, 3000.0)?;
    Ok(Fork { repo, a, b, both, head_a, head_b })
}

fn root_now(repo: &Repository) -> TResult<Option<Key>> {
    Ok(repo.object_key(repo.root().ok_or_else(|| fail("no root"))?)?)
}

fn expect_merged(outcome: MergeOutcome, what: &str) -> TResult<Vec<Conflict>> {
    match outcome {
        MergeOutcome::Merged { conflicts } => Ok(conflicts),
        other => Err(fail(format!("{what}: expected a three-way merge, got {other:?}"))),
    }
}

/// Merging a branch with itself or with its own history changes nothing; merging a branch
/// that did not change since the fork gives the other side's content, whether by fast-forward
/// or by a three-way merge against an unchanged side.
fn merge_unchanged(g: &Graph, edits: &[Edit], policy: MergePolicy) -> TResult {
    let mut repo = common::repo();
    let base = build_and_commit(&mut repo, g, false)?;
    repo.checkout(Checkout::branch("master"))?;

    // With itself, and with its own head by commit id.
    prop_assert_eq!(repo.merge("master", policy)?, MergeOutcome::UpToDate);
    prop_assert_eq!(repo.merge(&base.to_hex(), policy)?, MergeOutcome::UpToDate);
    prop_assert_eq!(repo.status(), Status::UpToDate);
    prop_assert!(repo.merge_states().is_empty());
    check_loaded(&repo, g, true)?;

    // `same` forks and does not move; `noop` forks and commits the same root again.
    repo.branch(Some("same"))?;
    repo.checkout(Checkout::branch("master"))?;
    repo.branch(Some("noop"))?;
    repo.checkout(Checkout::branch("noop"))?;
    let noop = repo.commit_at("no change", 1500.0)?;
    prop_assert_eq!(root_key(&repo, noop)?, root_key(&repo, base)?);

    // Master edits (at least once).
    repo.checkout(Checkout::branch("master"))?;
    let mut ids = check_loaded(&repo, g, true)?;
    let mut edited = g.clone();
    for &e in edits {
        apply_edit(&mut repo, &mut edited, &mut ids, e, Side::A, false)?;
    }
    let head = repo.commit_at("edits", 2000.0)?;
    let head_root = root_key(&repo, head)?;

    // Master already has `same` and its own base.
    prop_assert_eq!(repo.merge("same", policy)?, MergeOutcome::UpToDate);
    prop_assert_eq!(repo.merge(&base.to_hex(), policy)?, MergeOutcome::UpToDate);
    prop_assert_eq!(repo.merge("master", policy)?, MergeOutcome::UpToDate);
    prop_assert_eq!(repo.get_branch("master").expect("master").heads.clone(), vec![head]);
    prop_assert_eq!(repo.status(), Status::UpToDate);

    // `same` fast-forwards to master and shows master's content.
    repo.checkout(Checkout::branch("same"))?;
    prop_assert_eq!(repo.merge("master", policy)?, MergeOutcome::FastForward(head));
    prop_assert_eq!(repo.get_branch("same").expect("same").heads.clone(), vec![head]);
    prop_assert_eq!(repo.status(), Status::UpToDate);
    check_loaded(&repo, &edited, true)?;

    // Three-way merges against the unchanged side: no conflicts, master's content either way.
    for (ours, theirs, ours_head, theirs_head) in [("master", "noop", head, noop), ("noop", "master", noop, head)] {
        let mut r = repo.clone();
        r.checkout(Checkout::branch(ours))?;
        let conflicts = expect_merged(r.merge(theirs, policy)?, &format!("merging {theirs} into {ours}"))?;
        prop_assert!(conflicts.is_empty(), "merging {} into {}: conflicts {:?}", theirs, ours, conflicts);
        prop_assert_eq!(root_now(&r)?, Some(head_root), "merging {} into {}", theirs, ours);
        let m = r.commit("merge")?;
        prop_assert_eq!(root_key(&r, m)?, head_root);
        prop_assert_eq!(r.commit_info(m)?.parent_keys().collect::<Vec<_>>(), vec![ours_head, theirs_head]);
        r.checkout(Checkout::branch(ours))?;
        check_loaded(&r, &edited, true)?;
    }
    Ok(())
}

/// Two branches that changed disjoint fields (or objects) merge without conflicts into a graph
/// holding both changes, in either direction and under any policy; the result has the root
/// key of the same graph built directly.
fn merge_disjoint(g: &Graph, edits_a: &[Edit], edits_b: &[Edit], policy: MergePolicy) -> TResult {
    let f = fork(g, edits_a, edits_b, true, true, Side::B)?;
    let mut direct = common::repo();
    let direct_commit = build_and_commit(&mut direct, &f.both, false)?;
    let want_root = root_key(&direct, direct_commit)?;
    let sides = [("a", "b", f.head_a, f.head_b, &f.a), ("b", "a", f.head_b, f.head_a, &f.b)];
    for (ours, theirs, ours_head, theirs_head, ours_model) in sides {
        let mut r = f.repo.clone();
        r.checkout(Checkout::branch(ours))?;
        check_loaded(&r, ours_model, true)?;
        let conflicts = expect_merged(r.merge(theirs, policy)?, &format!("merging {theirs} into {ours}"))?;
        prop_assert!(conflicts.is_empty(), "merging {} into {}: conflicts {:?}", theirs, ours, conflicts);
        prop_assert!(r.conflicts().is_empty());
        prop_assert_eq!(r.merge_states(), &[theirs_head][..]);
        prop_assert_eq!(r.status(), Status::Modified);
        check_loaded(&r, &f.both, true)?;
        let m = r.commit("merge")?;
        prop_assert_eq!(r.commit_info(m)?.parent_keys().collect::<Vec<_>>(), vec![ours_head, theirs_head]);
        r.checkout(Checkout::branch(ours))?;
        check_loaded(&r, &f.both, true)?;
        prop_assert_eq!(root_key(&r, m)?, want_root, "merging {} into {}: the merged root key", theirs, ours);
    }
    Ok(())
}

/// Merges `theirs` into `ours` in a copy of the fork's repository and commits (after
/// `mark_resolved` under `Manual`); returns the conflicts and the merged root key.
fn merge_into(f: &Fork, ours: &str, theirs: &str, policy: MergePolicy) -> TResult<(Vec<Conflict>, Key)> {
    let mut r = f.repo.clone();
    r.checkout(Checkout::branch(ours))?;
    let conflicts = expect_merged(r.merge(theirs, policy)?, &format!("merging {theirs} into {ours} ({policy:?})"))?;
    if policy == MergePolicy::Manual {
        prop_assert_eq!(r.conflicts(), &conflicts[..]);
        if !conflicts.is_empty() {
            match r.commit("merge") {
                Err(Error::Merge(_)) => {}
                other => return Err(fail(format!("commit with unresolved conflicts: {other:?}"))),
            }
            prop_assert_eq!(r.status(), Status::Modified);
            r.mark_resolved();
            prop_assert!(r.conflicts().is_empty());
        }
    } else {
        prop_assert!(r.conflicts().is_empty());
    }
    let m = r.commit("merge")?;
    let head = |b: &str| r.get_branch(b).map(|b| b.heads.clone()).unwrap_or_default();
    prop_assert_eq!(head(ours), vec![m]);
    Ok((conflicts, root_key(&r, m)?))
}

/// A conflict's path, base, and the values of the two sides in a chosen order.
type ConflictView = (String, Option<String>, Option<String>, Option<String>);

fn paths(conflicts: &[Conflict]) -> Vec<String> {
    let mut p: Vec<String> = conflicts.iter().map(|c| c.path.clone()).collect();
    p.sort();
    p
}

/// Conflicts are symmetric under ours/theirs: B into A with `Ours` equals A into B with
/// `Theirs` (root and conflict paths, with the sides' values swapped), and likewise
/// `Theirs`/`Ours`; `Manual` reports the conflicts of `Ours`, refuses to commit until
/// `mark_resolved`, then commits ours; `Newest` takes the later side (b).
fn merge_symmetry(g: &Graph, edits_a: &[Edit], edits_b: &[Edit]) -> TResult {
    let f = fork(g, edits_a, edits_b, false, false, Side::B)?;
    let (c_ab_ours, k_ab_ours) = merge_into(&f, "a", "b", MergePolicy::Ours)?;
    let (c_ba_theirs, k_ba_theirs) = merge_into(&f, "b", "a", MergePolicy::Theirs)?;
    prop_assert_eq!(k_ab_ours, k_ba_theirs, "b into a (ours) vs a into b (theirs)");
    prop_assert_eq!(paths(&c_ab_ours), paths(&c_ba_theirs));
    let mut swapped: Vec<ConflictView> =
        c_ba_theirs.iter().map(|c| (c.path.clone(), c.base.clone(), c.theirs.clone(), c.ours.clone())).collect();
    let mut direct: Vec<ConflictView> =
        c_ab_ours.iter().map(|c| (c.path.clone(), c.base.clone(), c.ours.clone(), c.theirs.clone())).collect();
    swapped.sort();
    direct.sort();
    prop_assert_eq!(direct, swapped, "conflict values with the sides swapped");
    prop_assert!(c_ab_ours.iter().all(|c| c.taken == dsf::Side::Ours));
    prop_assert!(c_ba_theirs.iter().all(|c| c.taken == dsf::Side::Theirs));

    let (c_ab_theirs, k_ab_theirs) = merge_into(&f, "a", "b", MergePolicy::Theirs)?;
    let (c_ba_ours, k_ba_ours) = merge_into(&f, "b", "a", MergePolicy::Ours)?;
    prop_assert_eq!(k_ab_theirs, k_ba_ours, "b into a (theirs) vs a into b (ours)");
    prop_assert_eq!(paths(&c_ab_theirs), paths(&c_ba_ours));
    prop_assert_eq!(paths(&c_ab_theirs), paths(&c_ab_ours));
    if c_ab_ours.is_empty() {
        prop_assert_eq!(k_ab_ours, k_ab_theirs, "without conflicts the policy does not matter");
    }

    let (c_manual, k_manual) = merge_into(&f, "a", "b", MergePolicy::Manual)?;
    prop_assert_eq!(paths(&c_manual), paths(&c_ab_ours));
    prop_assert_eq!(k_manual, k_ab_ours, "manual keeps ours");

    let (_, k_newest_ab) = merge_into(&f, "a", "b", MergePolicy::Newest)?;
    prop_assert_eq!(k_newest_ab, k_ab_theirs, "newest takes b (the later commit) merging into a");
    let (_, k_newest_ba) = merge_into(&f, "b", "a", MergePolicy::Newest)?;
    prop_assert_eq!(k_newest_ba, k_ba_ours, "newest keeps b merging a into b");
    Ok(())
}

/// Both branches apply `edits` with the same values; see
/// `merge_of_identical_changes_has_no_conflicts`.
fn merge_identical(g: &Graph, edits: &[Edit], policy: MergePolicy) -> TResult {
    let f = fork(g, edits, edits, false, false, Side::A)?;
    let want = root_key(&f.repo, f.head_a)?;
    prop_assert_eq!(root_key(&f.repo, f.head_b)?, want);
    for (ours, theirs) in [("a", "b"), ("b", "a")] {
        let (conflicts, root) = merge_into(&f, ours, theirs, policy)?;
        prop_assert!(conflicts.is_empty(), "merging {} into {}: conflicts {:?}", theirs, ours, conflicts);
        prop_assert_eq!(root, want, "merging {} into {}", theirs, ours);
    }
    Ok(())
}

fn policy_strategy() -> impl Strategy<Value = MergePolicy> {
    prop_oneof![
        Just(MergePolicy::Manual),
        Just(MergePolicy::Ours),
        Just(MergePolicy::Theirs),
        Just(MergePolicy::Newest)
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Merging a branch with itself, its history, or a branch that did not change since the
    /// fork: `UpToDate`, `FastForward`, or a conflict-free merge to the other side's content.
    #[test]
    fn merge_with_unchanged_side_gives_the_other_side(
        g in graph(),
        edits in prop::collection::vec(edit_strategy(), 1..4),
        policy in policy_strategy(),
    ) {
        merge_unchanged(&g, &edits, policy)?;
    }

    /// Branches that changed disjoint fields or objects merge without conflicts into a graph
    /// with both changes, whichever side merges and whatever the policy.
    #[test]
    fn merge_of_disjoint_changes_has_both(
        g in graph(),
        edits_a in prop::collection::vec(edit_strategy(), 1..4),
        edits_b in prop::collection::vec(edit_strategy(), 1..4),
        policy in policy_strategy(),
    ) {
        merge_disjoint(&g, &edits_a, &edits_b, policy)?;
    }

    /// As above, on graphs whose floats include NaN and both zeros, with edits writing them: a
    /// float field one side did not touch (e.g. NaN) must not conflict, and a change of
    /// `0.0` to `-0.0` (a different value, a different key) must not be lost.
    #[test]
    fn merge_of_disjoint_changes_has_both_with_special_floats(
        g in special_graph(),
        edits_a in prop::collection::vec(special_float_edit_strategy(), 1..4),
        edits_b in prop::collection::vec(special_float_edit_strategy(), 1..4),
        policy in policy_strategy(),
    ) {
        merge_disjoint(&g, &edits_a, &edits_b, policy)?;
    }

    /// Conflicts are symmetric under ours/theirs, `Manual` reports the conflicts of `Ours` and
    /// refuses to commit until resolved, and `Newest` takes the later side.
    #[test]
    fn merge_conflicts_are_symmetric_under_ours_and_theirs(
        g in graph(),
        edits_a in prop::collection::vec(edit_strategy(), 1..5),
        edits_b in prop::collection::vec(edit_strategy(), 1..5),
    ) {
        merge_symmetry(&g, &edits_a, &edits_b)?;
    }

    /// Two branches that made the same edits (the same values) merge without conflicts, in
    /// either direction and under any policy, into the content they both have.
    #[test]
    fn merge_of_identical_changes_has_no_conflicts(
        g in graph(),
        edits in prop::collection::vec(edit_strategy(), 1..5),
        policy in policy_strategy(),
    ) {
        merge_identical(&g, &edits, policy)?;
    }
}

/// A graph of one `TestObj`.
fn test_obj_graph(t: TestObj) -> Graph {
    Graph { nodes: vec![Content::TestObj(t)], root: 0, shared: 0 }
}

/// Minimal case of `merge_of_disjoint_changes_has_both_with_special_floats`: the base holds
/// `floats: [NaN]`; a sets `string`, b appends to `strings`. No side touched `floats`, yet the
/// merge reports a conflict at `root.floats[0]` (NaN vs NaN vs NaN), and under `Manual` refuses
/// to commit.
#[test]
fn merge_of_disjoint_changes_with_an_untouched_nan() {
    let g = test_obj_graph(TestObj { floats: vec![f32::NAN], ..TestObj::default() });
    let a = [Edit { target: 0, field: 0, special_float: false }];
    let b = [Edit { target: 0, field: 3, special_float: false }];
    merge_disjoint(&g, &a, &b, MergePolicy::Manual).unwrap();
}

/// Minimal case of `merge_of_disjoint_changes_has_both_with_special_floats` for signed zeros:
/// the base holds `float: 0.0`; a sets it to `-0.0` (a different value and key), b sets
/// `string`. Merging a into b loses a's change: the result keeps `0.0`.
#[test]
fn merge_of_disjoint_changes_with_a_negative_zero() {
    let g = test_obj_graph(TestObj { float: Some(0.0), ..TestObj::default() });
    let a = [Edit { target: 0, field: 2, special_float: true }];
    let b = [Edit { target: 0, field: 0, special_float: false }];
    merge_disjoint(&g, &a, &b, MergePolicy::Ours).unwrap();
}

// ----- 4. treeish -------------------------------------------------------------------------------

/// On a linear history of `n` commits, `~k` is the k-th first parent of the head for k < n
/// and fails for k ≥ n; `^` and `~` are `~1`; `~a~b` is `~(a+b)`; `^0` is the head; `^2` fails.
fn treeish_linear(n: usize, changes: &[Option<i32>], a: usize, b: usize) -> TResult {
    let mut repo = common::repo();
    let root = repo.create(&common::person("p", 0))?;
    repo.set_root(root)?;
    let mut commits = Vec::new();
    for i in 0..n {
        if let Some(Some(id)) = changes.get(i) {
            let id = *id;
            repo.update::<Person>(root, |p| p.id = Some(id))?;
        }
        commits.push(repo.commit_at(&format!("commit {i}"), 1000.0 + i as f64)?);
    }
    let head = commits[n - 1];
    let log: Vec<Key> = repo.log("master")?.iter().map(|c| c.key).collect();
    let newest_first: Vec<Key> = commits.iter().rev().copied().collect();
    prop_assert_eq!(&log, &newest_first);
    let resolve = |t: &str| repo.resolve_treeish(t, "master").ok();
    for k in 0..n + 3 {
        let want = (k < n).then(|| commits[n - 1 - k]);
        prop_assert_eq!(resolve(&format!("~{k}")), want, "~{} on {} commits", k, n);
        let carets = "^".repeat(k);
        prop_assert_eq!(resolve(&carets), want, "{} on {} commits", carets, n);
    }
    let first = (n > 1).then(|| commits[n - 2]);
    prop_assert_eq!(resolve("^"), resolve("~1"));
    prop_assert_eq!(resolve("^"), first);
    prop_assert_eq!(resolve("~"), first);
    prop_assert_eq!(resolve("^1"), first);
    prop_assert_eq!(resolve(""), Some(head));
    prop_assert_eq!(resolve("^0"), Some(head));
    prop_assert_eq!(resolve("^2"), None);
    prop_assert_eq!(resolve(&format!("~{a}~{b}")), resolve(&format!("~{}", a + b)), "~{}~{}", a, b);
    prop_assert_eq!(resolve("~99999999999999999999999"), None);
    if let Some(k) = resolve(&format!("~{a}")) {
        repo.checkout(Checkout::branch("master").commit(k))?;
        prop_assert_eq!(repo.current(), Some(&Current::Detached(k)));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// `resolve_treeish` on random linear histories: `~k` for k below and beyond the length,
    /// `^` equal to `~1`, and concatenations.
    #[test]
    fn treeish_walks_first_parents(
        n in 1usize..12,
        changes in prop::collection::vec(proptest::option::of(-3i32..3), 12),
        a in 0usize..8,
        b in 0usize..8,
    ) {
        treeish_linear(n, &changes, a, b)?;
    }
}
