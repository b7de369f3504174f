//! Tests of `merge`: the field-level three-way merge and diff of object graphs (beyond ION).

use dsf::proto::net::ooici::play::{AddressLink, Person, TestObj};
use dsf::{
    ChangeKind, Checkout, Error, MASTER_BRANCH as MASTER, MergeOutcome, MergePolicy, Relationship, Repository, Side,
};

use crate::common::*;

/// master: an AddressLink "book" with three persons; branch "other" forks from it.
fn forked() -> Repository {
    let mut repo = repo();
    let people: Vec<_> =
        ["Ann", "Bob", "Cid"].iter().enumerate().map(|(i, n)| repo.create(&person(n, i as i32)).unwrap()).collect();
    let links = people.iter().map(|&p| repo.link(p).unwrap()).collect();
    let book = repo.create(&AddressLink { person: links, owner: None, title: Some("book".into()) }).unwrap();
    repo.set_root(book).unwrap();
    repo.commit_at("base", 100.0).unwrap();
    repo.branch(Some("other")).unwrap();
    repo.checkout(Checkout::branch(MASTER)).unwrap();
    repo
}

/// Edits person `i` of the checked-out book on `branch` and commits at `date`.
fn edit_person(repo: &mut Repository, branch: &str, i: usize, date: f64, edit: impl FnOnce(&mut Person)) {
    repo.checkout(Checkout::branch(branch)).unwrap();
    let book = repo.root().unwrap();
    let link = repo.get::<AddressLink>(book).unwrap().person[i].clone();
    let p = repo.resolve(&link).unwrap();
    repo.update::<Person>(p, edit).unwrap();
    repo.commit_at(&format!("edit {i} on {branch}"), date).unwrap();
}

fn person_at(repo: &Repository, i: usize) -> Person {
    let book = repo.get::<AddressLink>(repo.root().unwrap()).unwrap();
    repo.get::<Person>(repo.resolve(&book.person[i]).unwrap()).unwrap()
}

/// Changes to different fields and objects on the two sides are both taken, without conflict;
/// the merge commit has PARENT (ours) then MERGEDFROM (theirs).
#[test]
fn disjoint_changes_merge_cleanly() {
    let mut repo = forked();
    edit_person(&mut repo, "other", 0, 200.0, |p| p.email = Some("ann@x".into()));
    edit_person(&mut repo, "other", 2, 210.0, |p| p.name = Some("Cyd".into()));
    edit_person(&mut repo, MASTER, 0, 220.0, |p| p.id = Some(100));
    let ours = repo.commit_head().unwrap().unwrap();
    let theirs = repo.get_branch("other").unwrap().heads[0];
    let outcome = repo.merge("other", MergePolicy::Manual).unwrap();
    assert_eq!(outcome, MergeOutcome::Merged { conflicts: vec![] });
    let ann = person_at(&repo, 0);
    assert_eq!((ann.email.as_deref(), ann.id), (Some("ann@x"), Some(100)));
    assert_eq!(person_at(&repo, 2).name.as_deref(), Some("Cyd"));
    assert_eq!(person_at(&repo, 1).name.as_deref(), Some("Bob"));
    let m = repo.commit("merge other").unwrap();
    let parents: Vec<_> = repo.commit_info(m).unwrap().parents.iter().map(|p| (p.relationship, p.commit)).collect();
    assert_eq!(parents, vec![(Relationship::Parent, ours), (Relationship::MergedFrom, theirs)]);
    repo.checkout(Checkout::branch(MASTER)).unwrap();
    assert_eq!(person_at(&repo, 2).name.as_deref(), Some("Cyd"));
}

/// A field changed differently on both sides is a conflict reported with its path; `Manual`
/// keeps ours and refuses to commit until the conflict is marked resolved.
#[test]
fn manual_conflict_is_reported_and_blocks_commit() {
    let mut repo = forked();
    edit_person(&mut repo, "other", 1, 200.0, |p| p.email = Some("bob@theirs".into()));
    edit_person(&mut repo, MASTER, 1, 300.0, |p| p.email = Some("bob@ours".into()));
    let MergeOutcome::Merged { conflicts } = repo.merge("other", MergePolicy::Manual).unwrap() else {
        panic!("a merge")
    };
    assert_eq!(conflicts.len(), 1);
    let c = &conflicts[0];
    assert_eq!(c.path, "root.person[1].email");
    assert_eq!(
        (c.base.as_deref(), c.ours.as_deref(), c.theirs.as_deref()),
        (None, Some("\"bob@ours\""), Some("\"bob@theirs\""))
    );
    assert_eq!(c.taken, Side::Ours);
    assert_eq!(person_at(&repo, 1).email.as_deref(), Some("bob@ours"));
    let err = repo.commit("too early").unwrap_err();
    assert!(matches!(err, Error::Merge(_)) && err.to_string().contains("root.person[1].email"), "{err}");
    let book = repo.root().unwrap();
    let link = repo.get::<AddressLink>(book).unwrap().person[1].clone();
    let bob = repo.resolve(&link).unwrap();
    repo.update::<Person>(bob, |p| p.email = Some("bob@both".into())).unwrap();
    repo.mark_resolved();
    repo.commit("resolved").unwrap();
    repo.checkout(Checkout::branch(MASTER)).unwrap();
    assert_eq!(person_at(&repo, 1).email.as_deref(), Some("bob@both"));
}

/// The policies settle the same conflict as documented: ours, theirs, and newest by commit date.
#[test]
fn policies() {
    for (policy, theirs_date, expect) in [
        (MergePolicy::Ours, 200.0, "ours"),
        (MergePolicy::Theirs, 200.0, "theirs"),
        (MergePolicy::Newest, 400.0, "theirs"),
        (MergePolicy::Newest, 200.0, "ours"),
    ] {
        let mut repo = forked();
        edit_person(&mut repo, "other", 2, theirs_date, |p| p.name = Some("theirs".into()));
        edit_person(&mut repo, MASTER, 2, 300.0, |p| p.name = Some("ours".into()));
        let MergeOutcome::Merged { conflicts } = repo.merge("other", policy).unwrap() else { panic!("a merge") };
        assert_eq!(conflicts.len(), 1, "{policy:?}");
        assert_eq!(person_at(&repo, 2).name.as_deref(), Some(expect), "{policy:?} at {theirs_date}");
        repo.commit("merged").unwrap();
    }
}

/// Repeated fields merge element-wise when base, ours and theirs have the same length, and
/// conflict as a whole field otherwise.
#[test]
fn repeated_fields() {
    let mut repo = repo();
    let t = repo
        .create(&TestObj {
            strings: vec!["a".into(), "b".into(), "c".into()],
            integers: vec![1, 2],
            ..Default::default()
        })
        .unwrap();
    repo.set_root(t).unwrap();
    repo.commit_at("base", 1.0).unwrap();
    repo.branch(Some("other")).unwrap();
    let r = repo.root().unwrap();
    repo.update::<TestObj>(r, |o| {
        o.strings[2] = "C".into();
        o.integers.push(3);
    })
    .unwrap();
    repo.commit_at("theirs", 2.0).unwrap();
    repo.checkout(Checkout::branch(MASTER)).unwrap();
    let r = repo.root().unwrap();
    repo.update::<TestObj>(r, |o| {
        o.strings[0] = "A".into();
        o.integers.clear();
    })
    .unwrap();
    repo.commit_at("ours", 3.0).unwrap();
    let MergeOutcome::Merged { conflicts } = repo.merge("other", MergePolicy::Theirs).unwrap() else {
        panic!("a merge")
    };
    let paths: Vec<_> = conflicts.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["root.integers"]);
    assert_eq!(conflicts[0].ours, None, "ours removed every element");
    let merged: TestObj = repo.get(repo.root().unwrap()).unwrap();
    assert_eq!(merged.strings, ["A", "b", "C"]);
    assert_eq!(merged.integers, [1, 2, 3]);
}

/// Up-to-date and fast-forward merges make no merge commit.
#[test]
fn up_to_date_and_fast_forward() {
    let mut repo = forked();
    assert_eq!(repo.merge("other", MergePolicy::Manual).unwrap(), MergeOutcome::UpToDate);
    assert_eq!(repo.merge(MASTER, MergePolicy::Manual).unwrap(), MergeOutcome::UpToDate, "a branch with itself");
    edit_person(&mut repo, "other", 0, 200.0, |p| p.name = Some("Anne".into()));
    let theirs = repo.commit_head().unwrap().unwrap();
    repo.checkout(Checkout::branch(MASTER)).unwrap();
    assert_eq!(repo.merge("other", MergePolicy::Manual).unwrap(), MergeOutcome::FastForward(theirs));
    assert_eq!(repo.get_branch(MASTER).unwrap().heads, vec![theirs]);
    assert_eq!(person_at(&repo, 0).name.as_deref(), Some("Anne"));
    assert_eq!(repo.status(), dsf::Status::UpToDate);
    // Merging a commit by its key works too.
    assert_eq!(repo.merge(&theirs.to_hex(), MergePolicy::Manual).unwrap(), MergeOutcome::UpToDate);
}

/// A merge needs a clean, attached workspace and a known branch.
#[test]
fn merge_preconditions() {
    let mut repo = forked();
    assert!(matches!(repo.merge("nope", MergePolicy::Manual), Err(Error::UnknownBranch { .. })));
    let r = repo.root().unwrap();
    repo.update::<AddressLink>(r, |b| b.title = Some("dirty".into())).unwrap();
    assert!(matches!(repo.merge("other", MergePolicy::Manual), Err(Error::Merge(_))));
    repo.reset().unwrap();
    let head = repo.commit_head().unwrap().unwrap();
    repo.checkout(Checkout::branch(MASTER).commit(head)).unwrap();
    assert!(matches!(repo.merge("other", MergePolicy::Manual), Err(Error::Merge(_))));
}

/// Only the objects on changed paths are new after a merge: equal subgraphs are shared by key.
#[test]
fn unchanged_subgraphs_are_shared() {
    let mut repo = forked();
    edit_person(&mut repo, "other", 0, 200.0, |p| p.email = Some("a".into()));
    edit_person(&mut repo, MASTER, 2, 300.0, |p| p.email = Some("c".into()));
    let before = repo.elements().len();
    repo.merge("other", MergePolicy::Manual).unwrap();
    assert_eq!(repo.elements().len(), before + 1, "only the merged book is new");
}

/// Diff reports field-level changes with paths, following links into changed objects only.
#[test]
fn diff_reports_paths() {
    let mut repo = forked();
    let base = repo.commit_head().unwrap().unwrap();
    edit_person(&mut repo, MASTER, 1, 200.0, |p| {
        p.email = Some("bob@x".into());
        p.id = Some(42);
    });
    let r = repo.root().unwrap();
    repo.update::<AddressLink>(r, |b| b.title = None).unwrap();
    let head = repo.commit_at("more", 300.0).unwrap();
    let changes = repo.diff(base, head).unwrap();
    let summary: Vec<_> = changes.iter().map(|c| (c.path.as_str(), c.kind)).collect();
    assert_eq!(
        summary,
        vec![
            ("root.person[1].id", ChangeKind::Modified),
            ("root.person[1].email", ChangeKind::Added),
            ("root.title", ChangeKind::Removed),
        ]
    );
    assert_eq!(changes[0].before.as_deref(), Some("1"));
    assert_eq!(changes[0].after.as_deref(), Some("42"));
    assert!(repo.diff(head, head).unwrap().is_empty());
}
