//! The command line's grammar (clap): every command, its arguments and its help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// What `dsf-cli help-document` prints.
pub const DOCUMENT_HELP: &str = r#"root.json: the checked-out graph

Every object is a JSON object in the protobuf JSON mapping, with the .proto field names;
fields at their default value are left out. Two annotations come first:

  "@type"  the full name of the object's message (see `dsf-cli types`)
  "@key"   the key the object had when the file was written (a hint: objects are always
           hashed again on commit, and an unchanged object keeps its key)

A link (a field of type net.ooici.core.link.CASRef) holds the object it points at:

  {"@type": "net.ooici.play.AddressBook", "@key": "5A…", "title": "Friends",
   "person": [{"@type": "net.ooici.play.Person", "@key": "9B…", "name": "Ann", "id": 1}]}

An object met a second time, or of a type left out of the checkout, is written
{"@ref": "KEY"}: the stored object with that key, unchanged. You may write any link that way,
and new objects need no "@key".

After a merge with conflicts, each conflicting field holds
  {"@conflict": {"path": "root.person[1].email", "base": …, "ours": …, "theirs": …}}
Replace it with the value to keep (for example the "ours" or "theirs" value); commit refuses
while any remains."#;

const ABOUT: &str = "Versioned graphs of protobuf objects, with git's workflow";

const LONG_ABOUT: &str = "\
Versioned graphs of protobuf objects, with git's workflow.

A working copy holds root.json, the checked-out object graph written in the protobuf JSON
mapping: every object carries \"@type\" (its message) and \"@key\" (its key when written out),
and a link holds the object it points at inline, or {\"@ref\": KEY} for an object written
earlier in the file or left out of the checkout. Edit root.json with any editor, then commit.

The local store lives in the hidden .dsf folder of the working copy (RocksDB).";

const AFTER_HELP: &str = "\
Examples:
  dsf-cli init book && cd book
  dsf-cli import ../address-book.json
  dsf-cli commit -m 'first version'
  dsf-cli branch draft && dsf-cli checkout draft
  $EDITOR root.json && dsf-cli commit -m 'new phone number'
  dsf-cli checkout master && dsf-cli merge draft
  dsf-cli log --all

Remotes: amqp://[user:pass@]host[:port]/SYSNAME (a datastore behind RabbitMQ),
grpc://host:port (a datastore's gRPC port), or the path of a store folder.

Exit codes:
  0  success
  1  error: bad input, unknown name, refused operation (nothing was changed)
  2  the command line is wrong
  3  a merge stopped with conflicts to resolve
  4  a remote could not be reached or refused the request
  5  fsck found corrupt or missing elements";

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "dsf-cli", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Work in this folder instead of the current one.
    #[arg(short = 'C', long = "dir", global = true, value_name = "DIR")]
    pub chdir: Option<PathBuf>,
    /// Print one JSON document instead of text (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only what was asked for.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Colour: auto (when stdout is a terminal and NO_COLOR is unset), always or never.
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub color: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a new, empty working copy.
    #[command(after_help = "Examples:\n  dsf-cli init\n  dsf-cli init book --algorithm blake3")]
    Init {
        /// The folder (made if missing; default: the current one).
        dir: Option<PathBuf>,
        /// Key hash: sha1 (ION-compatible) or blake3 (for data from untrusted parties).
        #[arg(long, default_value = "sha1", value_name = "ALG")]
        algorithm: String,
        /// The repository key (default: a new random one).
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
    },
    /// Copy a repository from a remote into a new working copy and check out master.
    #[command(
        after_help = "Examples:\n  dsf-cli clone grpc://db.example:50051 6F1B0C52-… book\n  dsf-cli clone amqp://guest:guest@broker/dsf 6F1B0C52-… book\n  dsf-cli clone /srv/dsf/store 6F1B0C52-…\n  dsf-cli clone --depth 1 grpc://db.example:50051 6F1B0C52-…   (only the newest commits)"
    )]
    Clone {
        /// Where: amqp://host/SYSNAME, grpc://host:port or a store folder.
        url: String,
        /// The repository key.
        key: String,
        /// The new working copy (default: the repository key).
        dir: Option<PathBuf>,
        /// Register the types of this descriptor set first (for repositories of your own
        /// types); repeat for more.
        #[arg(long = "types", value_name = "FILE")]
        types: Vec<PathBuf>,
        /// Take objects of every type (by default ArrayStructure payloads are left out, as ION
        /// did, and stay on the remote).
        #[arg(long)]
        all_types: bool,
        /// Give up when the remote stays silent this long (seconds; default: the client's, 15 s
        /// over AMQP).
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<f64>,
        /// A shallow clone: only the commits within N generations of the heads (through every
        /// parent, as git counts); `fetch --deepen` or `--unshallow` brings more later.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        depth: Option<u32>,
    },
    /// Switch the working copy to a branch, a commit or a date.
    #[command(
        after_help = "Examples:\n  dsf-cli checkout draft\n  dsf-cli checkout -b fix\n  dsf-cli checkout master~2          (read only)\n  dsf-cli checkout master --before 2026-01-31T12:00:00Z\n  dsf-cli checkout master --exclude-type net.ooici.cdm.syntactic.ArrayStructure"
    )]
    Checkout {
        /// A branch, or a revision (commit key or prefix, BRANCH~N, REMOTE/BRANCH) for a
        /// read-only checkout. Default: the current branch.
        target: Option<String>,
        /// Make a new branch at TARGET (default: the current commit) and switch to it.
        #[arg(short = 'b', value_name = "NAME")]
        new_branch: Option<String>,
        /// The newest commit of the branch dated at or before DATE (RFC 3339, a day
        /// YYYY-MM-DD, or seconds since 1970): read only.
        #[arg(long, value_name = "DATE")]
        before: Option<String>,
        /// Leave objects of this type out (written as {"@ref": KEY}); repeat for more types.
        #[arg(long = "exclude-type", value_name = "TYPE")]
        exclude_type: Vec<String>,
        /// Load every type (forget excluded types).
        #[arg(long, conflicts_with = "exclude_type")]
        all_types: bool,
        /// Discard uncommitted changes in root.json (and a merge in progress).
        #[arg(short, long)]
        force: bool,
    },
    /// Show the branch, changes in root.json, conflicts, and how the branch stands to its remotes.
    #[command(after_help = "Examples:\n  dsf-cli status\n  dsf-cli status --json")]
    Status,
    /// Field-level differences: root.json against HEAD, REV against root.json, or REV1 against REV2.
    #[command(after_help = "Examples:\n  dsf-cli diff\n  dsf-cli diff master~1\n  dsf-cli diff master draft")]
    Diff {
        /// From this revision (default: HEAD).
        from: Option<String>,
        /// To this revision (default: root.json).
        to: Option<String>,
    },
    /// Record root.json as a new commit of the current branch.
    #[command(after_help = "Examples:\n  dsf-cli commit -m 'add Ann'")]
    Commit {
        /// The commit message.
        #[arg(short, long, value_name = "MESSAGE")]
        message: String,
    },
    /// List, create or delete branches.
    #[command(
        after_help = "Examples:\n  dsf-cli branch\n  dsf-cli branch draft\n  dsf-cli branch old master~3\n  dsf-cli branch -d draft"
    )]
    Branch {
        /// The branch to create (or delete, with -d).
        name: Option<String>,
        /// Where the new branch starts (default: HEAD).
        start: Option<String>,
        /// Delete the branch NAME.
        #[arg(short, long)]
        delete: bool,
    },
    /// Merge a branch, remote branch or commit into the current branch, field by field.
    #[command(
        after_help = "Examples:\n  dsf-cli merge draft\n  dsf-cli merge origin/master --policy theirs\n  dsf-cli merge --continue\n  dsf-cli merge --abort\n\nWith --policy manual (the default), conflicting fields are written into root.json as\n  {\"@conflict\": {\"path\": …, \"base\": …, \"ours\": …, \"theirs\": …}}\nReplace each with the value to keep, then run `dsf-cli merge --continue`."
    )]
    Merge {
        /// What to merge.
        #[arg(required_unless_present_any = ["continue_", "abort"])]
        name: Option<String>,
        /// How conflicting fields are settled: manual, ours, theirs or newest.
        #[arg(long, default_value = "manual", value_name = "POLICY")]
        policy: String,
        /// The merge commit's message.
        #[arg(short, long, value_name = "MESSAGE")]
        message: Option<String>,
        /// Commit the merge once every conflict in root.json is resolved.
        #[arg(long = "continue", conflicts_with_all = ["abort", "name"])]
        continue_: bool,
        /// Abandon the merge and restore root.json.
        #[arg(long, conflicts_with_all = ["continue_", "name"])]
        abort: bool,
    },
    /// Show the history, with a graph of divergent heads and merges.
    #[command(after_help = "Examples:\n  dsf-cli log\n  dsf-cli log --all\n  dsf-cli log draft -n 5 --oneline")]
    Log {
        /// The branch or revision to start from (default: HEAD).
        rev: Option<String>,
        /// Every branch and remote branch.
        #[arg(long)]
        all: bool,
        /// At most N commits.
        #[arg(short = 'n', value_name = "N")]
        max: Option<usize>,
        /// One line per commit.
        #[arg(long)]
        oneline: bool,
    },
    /// Show a commit and what it changed.
    #[command(after_help = "Examples:\n  dsf-cli show\n  dsf-cli show master~1")]
    Show {
        /// The revision (default: HEAD).
        rev: Option<String>,
    },
    /// Manage remotes.
    #[command(subcommand)]
    Remote(RemoteCommand),
    /// Send the branches to a remote.
    #[command(
        after_help = "Examples:\n  dsf-cli push\n  dsf-cli push backup\n  dsf-cli push --diverge   (let the datastore keep both heads, as ION did)"
    )]
    Push {
        /// The remote (default: origin).
        remote: Option<String>,
        /// Push even when the remote holds commits that are not here: the datastore keeps its
        /// heads and ours side by side (a divergent branch).
        #[arg(long)]
        diverge: bool,
        /// Give up when the remote stays silent this long (seconds; default: the client's, 15 s
        /// over AMQP).
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<f64>,
    },
    /// Fetch from a remote and merge its branch into the current one.
    #[command(after_help = "Examples:\n  dsf-cli pull\n  dsf-cli pull origin --policy theirs")]
    Pull {
        /// The remote (default: origin).
        remote: Option<String>,
        /// How conflicting fields are settled: manual, ours, theirs or newest.
        #[arg(long, default_value = "manual", value_name = "POLICY")]
        policy: String,
        /// Take objects of every type (by default ArrayStructure payloads are left out, as ION
        /// did, and stay on the remote).
        #[arg(long)]
        all_types: bool,
        /// Give up when the remote stays silent this long (seconds; default: the client's, 15 s
        /// over AMQP).
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<f64>,
    },
    /// Download what a remote has and this copy lacks; branches here do not move.
    #[command(
        after_help = "Examples:\n  dsf-cli fetch\n  dsf-cli fetch backup\n  dsf-cli fetch --deepen 10   (a shallow copy: 10 more generations)\n  dsf-cli fetch --unshallow"
    )]
    Fetch {
        /// The remote (default: origin).
        remote: Option<String>,
        /// Give up when the remote stays silent this long (seconds; default: the client's, 15 s
        /// over AMQP).
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<f64>,
        /// In a shallow copy: also bring N more generations of history beyond its boundary.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "unshallow")]
        deepen: Option<u32>,
        /// In a shallow copy: bring the whole history.
        #[arg(long)]
        unshallow: bool,
    },
    /// Verify every stored element's key and every link.
    #[command(after_help = "Examples:\n  dsf-cli fsck\n  dsf-cli fsck --json")]
    Fsck,
    /// Delete stored elements that no branch, remote branch or checkout reaches.
    #[command(after_help = "Examples:\n  dsf-cli gc --dry-run\n  dsf-cli gc")]
    Gc {
        /// Only report what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the registered types, or register a descriptor set.
    #[command(
        subcommand_required = false,
        after_help = "Examples:\n  dsf-cli types\n  dsf-cli types add my-types.pb   (from protoc --include_imports --descriptor_set_out=my-types.pb)"
    )]
    Types {
        #[command(subcommand)]
        command: Option<TypesCommand>,
    },
    /// Replace root.json with a graph read from JSON or binary protobuf.
    #[command(
        after_help = "Examples:\n  dsf-cli import book.json\n  dsf-cli import book.bin --format binary\n  dsf-cli import person.pb --format message --type net.ooici.play.Person\n\nJSON is the form of root.json. binary is an ION Structure (what export --format binary\nwrites). message is one encoded message of --type."
    )]
    Import {
        /// The file (- for standard input).
        file: PathBuf,
        /// json, binary (an ION Structure envelope) or message (one encoded message).
        #[arg(long, default_value = "json", value_parser = ["json", "binary", "message"])]
        format: String,
        /// The message type, for --format message (or a JSON object without "@type").
        #[arg(long = "type", value_name = "TYPE")]
        type_name: Option<String>,
        /// Discard uncommitted changes in root.json.
        #[arg(short, long)]
        force: bool,
    },
    /// Write a commit's graph as JSON or as an ION Structure.
    #[command(
        after_help = "Examples:\n  dsf-cli export > book.json\n  dsf-cli export master~1 --format binary -o book.bin"
    )]
    Export {
        /// The revision (default: HEAD).
        rev: Option<String>,
        /// json or binary (an ION Structure envelope: the root as head, every object as an item).
        #[arg(long, default_value = "json", value_parser = ["json", "binary"])]
        format: String,
        /// The output file (default: standard output).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print the key an object would have, without storing it.
    #[command(
        name = "hash-object",
        after_help = "Examples:\n  dsf-cli hash-object --type net.ooici.play.Person --json '{\"name\": \"Ann\"}'   (key as JSON)\n  dsf-cli hash-object --type net.ooici.play.Person --text '{\"name\": \"Ann\"}'\n  dsf-cli hash-object --type 20001 person.pb\n  dsf-cli hash-object doc.json\n\nWith --json, an argument that is not a file but JSON text is the object itself."
    )]
    HashObject {
        /// The type: a full message name or an object id (ID or ID/VERSION). Needed for binary
        /// input and for JSON without "@type".
        #[arg(long = "type", value_name = "TYPE")]
        type_name: Option<String>,
        /// The object as JSON text (not `--json`: that global flag asks for JSON output).
        #[arg(long = "text", value_name = "TEXT", conflicts_with = "file")]
        json_text: Option<String>,
        /// A file with the object: JSON, or its encoded message (- for standard input).
        #[arg(required_unless_present = "json_text")]
        file: Option<PathBuf>,
        /// The key hash (default: the working copy's, else sha1).
        #[arg(long, value_name = "ALG")]
        algorithm: Option<String>,
    },
    /// Print a stored element (object or commit) as JSON; links are written {"@ref": KEY}.
    #[command(
        name = "cat-object",
        after_help = "Examples:\n  dsf-cli cat-object 9AF394F5E7F1A26E0B0C3A6F5A5D8A5B6C7D8E9F"
    )]
    CatObject {
        /// The element key (hex).
        key: String,
    },
    /// What root.json looks like, in detail.
    #[command(name = "help-document")]
    HelpDocument,
}

#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Add a remote.
    #[command(
        after_help = "Examples:\n  dsf-cli remote add origin grpc://127.0.0.1:50051\n  dsf-cli remote add ion amqp://guest:guest@localhost/mysys\n  dsf-cli remote add disk /srv/dsf/store"
    )]
    Add {
        /// Its name.
        name: String,
        /// amqp://[user:pass@]host[:port]/SYSNAME, grpc://host:port, or a store folder.
        url: String,
    },
    /// List remotes.
    #[command(alias = "ls")]
    List,
    /// Remove a remote (and what is known of its branches).
    #[command(alias = "rm")]
    Remove {
        /// Its name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TypesCommand {
    /// Register the types of a descriptor set (protoc --include_imports --descriptor_set_out).
    Add {
        /// The descriptor set file.
        file: PathBuf,
    },
}
