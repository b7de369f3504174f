//! `dsf-cli`: git's workflow for versioned graphs of protobuf objects, as a library of commands.
//!
//! A working copy is a folder holding `root.json` (the checked-out graph as JSON) and a hidden
//! `.dsf` folder (the local RocksDB store, configuration, checkout state, remotes). Commands
//! read and write the local store; `clone`, `fetch`, `pull` and `push` talk to a datastore over
//! AMQP or gRPC, or to another store on disk, through one [`remote::Remote`].
//!
//! Every command is an ordinary async function that takes the folder it runs in and its
//! options, writes what it shows through a [`ui::Ui`], and returns its exit code (or an error
//! whose exit code [`report`] finds). The `dsf-cli` binary only parses the command line and
//! turns the outcome into an exit code, so every command can be called and tested in-process.
//! This crate knows the command line and the working copy; transports and the datastore live in
//! `dsf-container`, sync planning in `dsf::sync`.

pub mod args;
pub mod commands;

pub mod remote;
pub mod session;

pub mod timefmt;
pub mod ui;
pub mod workdir;

pub use args::{Cli, Command, DOCUMENT_HELP, Global, RemoteCommand, TypesCommand};
pub use commands::run;

use crate::ui::{Failure, Ui};

/// Prints an error (as text on stderr, or as JSON on stdout with `--json`) and returns its
/// exit code.
pub fn report(ui: &Ui, e: &anyhow::Error) -> i32 {
    let failure = e.downcast_ref::<Failure>();
    let code = failure.map_or_else(|| remote::exit_code(e), |f| f.code);
    let hint = failure.and_then(|f| f.hint.clone()).or_else(|| remote::hint(e));
    let mut message = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !message.contains(&c) {
            message.push_str(": ");
            message.push_str(&c);
        }
    }
    if ui.json {
        ui.emit(serde_json::json!({ "error": message, "hint": hint, "exit_code": code }));
    } else {
        eprintln!("{} {message}", ui.red("error:"));
        if let Some(h) = hint {
            eprintln!("{} {h}", ui.dim("hint:"));
        }
    }
    code
}
