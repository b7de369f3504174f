//! A tour of DSF on the embedded default store, RocksDB: build an object graph, commit,
//! branch, edit both branches, merge field by field with a conflict, resolve it, then reopen
//! the store and print the history from disk.
//!
//! Run with `cargo run -p dsf-store-backends --example walkthrough [DIR]`; the store goes to DIR
//! (default: a new temporary folder, removed at the end).

use dsf::proto::net::ooici::play::{AddressLink, Person, person};
use dsf::store::persist::StoredRepository;
use dsf::{Checkout, MASTER_BRANCH as MASTER, MergeOutcome, MergePolicy, ObjectId, Registry, Repository};
use dsf_store_backends::rocks::RocksStore;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let temp = tempfile::tempdir()?;
    let dir = std::env::args().nth(1).map(std::path::PathBuf::from).unwrap_or_else(|| temp.path().join("store"));
    runtime.block_on(walkthrough(&dir))
}

async fn walkthrough(dir: &std::path::Path) -> anyhow::Result<()> {
    let store = RocksStore::open(dir)?;
    println!("RocksDB store in {}", dir.display());
    let mut stored = StoredRepository::create(&store, Repository::new(Registry::builtin()));
    let key = stored.repository().key().to_owned();
    let repo = stored.repository_mut();
    println!("repository {} ({} keys)", repo.key(), repo.algorithm().name());

    // An address book linking three people; Ann is also the owner, so she is linked twice.
    let people = ["Ann", "Bob", "Cid"]
        .iter()
        .enumerate()
        .map(|(i, name)| repo.create(&new_person(name, i as i32)))
        .collect::<Result<Vec<_>, _>>()?;
    let links = people.iter().map(|&p| repo.link(p)).collect::<Result<Vec<_>, _>>()?;
    let book = AddressLink { person: links, owner: Some(repo.link(people[0])?), title: Some("friends".into()) };
    let book = repo.create(&book)?;
    repo.set_root(book)?;
    let first = stored.commit("an address book of three").await?;
    let repo = stored.repository_mut();
    println!("committed {first}: {} elements, {} bytes", repo.elements().len(), repo.size());

    // A branch that gives Bob an email address and renames the book.
    repo.branch(Some("work"))?;
    edit_person(repo, 1, |p| p.email = Some("bob@work.example".into()))?;
    let root = repo.root().expect("checked out");
    repo.update::<AddressLink>(root, |b| b.title = Some("friends and colleagues".into()))?;
    stored.commit("bob's work address; rename the book").await?;

    // Meanwhile on master: a phone number for Ann and a different email for Bob.
    stored.checkout(Checkout::branch(MASTER)).await?;
    let repo = stored.repository_mut();
    edit_person(repo, 0, |p| {
        p.phone.push(person::PhoneNumber {
            number: Some("555-0100".into()),
            r#type: Some(person::PhoneType::Mobile as i32),
        })
    })?;
    edit_person(repo, 1, |p| p.email = Some("bob@home.example".into()))?;
    stored.commit("ann's phone; bob's home address").await?;
    let repo = stored.repository_mut();

    println!("\nmerging work into master:");
    match repo.merge("work", MergePolicy::Manual)? {
        MergeOutcome::Merged { conflicts } => {
            for c in &conflicts {
                println!(
                    "  conflict at {}: ours {} / theirs {}",
                    c.path,
                    c.ours.as_deref().unwrap_or("(absent)"),
                    c.theirs.as_deref().unwrap_or("(absent)")
                );
            }
        }
        other => println!("  {other:?}"),
    }
    // Resolve by keeping both addresses in one field, then record the merge commit.
    edit_person(repo, 1, |p| p.email = Some("bob@home.example, bob@work.example".into()))?;
    repo.mark_resolved();
    let merge = stored.commit("merge work: keep both of bob's addresses").await?;
    println!("  merge commit {merge}");

    // Everything is on disk: close the store, open it again, and read the repository back.
    drop(stored);
    drop(store);
    let store = RocksStore::open(dir)?;
    let mut stored =
        StoredRepository::open(&store, Registry::builtin(), &key).await?.expect("the repository was saved");
    stored.checkout(Checkout::branch(MASTER)).await?;
    // The log shows the whole history: read it (opening reads only the heads).
    stored.load_history().await?;
    println!("\nreopened {key} from {}", dir.display());
    let repo = stored.repository();

    let root = repo.root().expect("checked out");
    let book: AddressLink = repo.get(root)?;
    println!("\n{:?}:", book.title.unwrap_or_default());
    for link in &book.person {
        let p: Person = repo.get(repo.resolve(link).expect("loaded"))?;
        println!("  {:<4} email={:<40} phones={}", p.name(), p.email().to_string(), p.phone.len());
    }

    println!("\nlog of master:");
    for c in repo.log(MASTER)? {
        let parents =
            c.parents.iter().map(|p| format!("{:?} {}", p.relationship, &p.commit.to_hex()[..8])).collect::<Vec<_>>();
        println!("  {}  {:<45} parents: {}", &c.key.to_hex()[..8], c.comment, parents.join(", "));
    }
    Ok(())
}

fn new_person(name: &str, id: i32) -> Person {
    Person { name: Some(name.into()), id: Some(id), email: None, phone: Vec::new() }
}

/// Edits person `i` of the checked-out address book.
fn edit_person(repo: &mut Repository, i: usize, edit: impl FnOnce(&mut Person)) -> anyhow::Result<()> {
    let root = repo.root().expect("checked out");
    let link = repo.get::<AddressLink>(root)?.person[i].clone();
    let id: ObjectId = repo.resolve(&link).expect("loaded");
    repo.update::<Person>(id, edit)?;
    Ok(())
}
