//! The commands: one module per command or close group, each command an ordinary function
//! that takes the folder it runs in and its options and returns its exit code.

pub mod branch;
pub mod clone;
pub mod commit;
pub mod fetch;
pub mod init;
pub mod io;
pub mod log;
pub mod maint;
pub mod merge;
pub mod plumbing;
pub mod push;
pub mod remotes;
pub mod status;
pub mod sync;
pub mod types;

pub use self::branch::*;
pub use self::clone::*;
pub use self::commit::*;
pub use self::fetch::*;
pub use self::init::*;
pub use self::io::*;
pub use self::log::*;
pub use self::maint::*;
pub use self::merge::*;
pub use self::plumbing::*;
pub use self::push::*;
pub use self::remotes::*;
pub use self::status::*;
pub use self::sync::*;
pub use self::types::*;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dsf::{Key, MergePolicy};

use crate::session::Session;
use crate::ui::{Ui, exit, fail};
use crate::{Command, RemoteCommand, TypesCommand};

/// Runs a command; returns the exit code.
pub async fn run(dir: Option<PathBuf>, command: Command, ui: Ui) -> Result<i32> {
    let base = match dir {
        Some(d) => d,
        None => std::env::current_dir().context("cannot read the current folder")?,
    };
    match command {
        Command::Init { dir, algorithm, key } => init(&base, dir, &algorithm, key, ui),
        Command::Clone { url, key, dir, types, all_types, timeout, depth } => {
            let types = types.into_iter().map(|t| within(&base, t)).collect::<Vec<_>>();
            let depth = depth.map(|d| d as usize);
            let opts = SyncOptions { timeout: seconds(timeout)?, all_types, depth, ..SyncOptions::default() };
            clone::clone(&base, &url, &key, dir, &types, opts, ui).await
        }
        Command::Checkout { target, new_branch, before, exclude_type, all_types, force } => {
            let how = CheckoutArgs { target, new_branch, before, exclude_type, all_types, force };
            checkout(&base, how, ui).await
        }
        Command::Status => status(&base, ui).await,
        Command::Diff { from, to } => diff(&base, from, to, ui).await,
        Command::Commit { message } => commit(&base, &message, ui).await,
        Command::Branch { name, start, delete } => branch(&base, name, start, delete, ui).await,
        Command::Merge { name, policy, message, continue_, abort } => {
            if continue_ {
                merge_continue(&base, message, ui).await
            } else if abort {
                merge_abort(&base, ui).await
            } else {
                let name = name.context("name what to merge")?;
                let s = Session::open(&base)?;
                merge(&s, &name, parse_policy(&policy)?, message, ui).await
            }
        }
        Command::Log { rev, all, max, oneline } => log(&base, rev, all, max, oneline, ui).await,
        Command::Show { rev } => show(&base, rev, ui).await,
        Command::Remote(c) => match c {
            RemoteCommand::Add { name, url } => remotes::remote_add(&base, &name, &url, ui),
            RemoteCommand::List => remotes::remote_list(&base, ui),
            RemoteCommand::Remove { name } => remotes::remote_remove(&base, &name, ui),
        },
        Command::Push { remote, diverge, timeout } => {
            let opts = SyncOptions { timeout: seconds(timeout)?, ..SyncOptions::default() };
            push::push(&base, remote, diverge, opts, ui).await
        }
        Command::Pull { remote, policy, all_types, timeout } => {
            let opts = SyncOptions { timeout: seconds(timeout)?, all_types, ..SyncOptions::default() };
            fetch::pull(&base, remote, parse_policy(&policy)?, opts, ui).await
        }
        Command::Fetch { remote, timeout, deepen, unshallow } => {
            let deepen = deepen.map(|d| d as usize);
            let opts = SyncOptions { timeout: seconds(timeout)?, deepen, unshallow, ..SyncOptions::default() };
            fetch::fetch(&base, remote, opts, ui).await
        }
        Command::Fsck => maint::fsck(&base, ui).await,
        Command::Gc { dry_run } => maint::gc(&base, dry_run, ui).await,
        Command::Types { command } => match command {
            None => types_list(&base, ui),
            Some(TypesCommand::Add { file }) => types_add(&base, &within(&base, file), ui),
        },
        Command::Import { file, format, type_name, force } => {
            import(&base, &within(&base, file), &format, type_name, force, ui).await
        }
        Command::Export { rev, format, output } => {
            export(&base, rev, &format, output.map(|o| within(&base, o)), ui).await
        }
        Command::HashObject { type_name, json_text, file, algorithm } => {
            hash_object(&base, type_name, json_text, file, algorithm, ui)
        }
        Command::CatObject { key } => cat_object(&base, &key, ui).await,
        Command::HelpDocument => {
            ui.out(crate::DOCUMENT_HELP);
            Ok(exit::OK)
        }
    }
}

/// A path named on the command line, relative to the folder given with `-C` (as git does);
/// `-` (standard input or output) stays as it is.
pub fn within(base: &Path, path: PathBuf) -> PathBuf {
    if path == Path::new("-") { path } else { base.join(path) }
}

/// A `--timeout` in seconds: positive and finite.
pub fn seconds(value: Option<f64>) -> Result<Option<std::time::Duration>> {
    value
        .map(|v| {
            std::time::Duration::try_from_secs_f64(v).ok().filter(|d| !d.is_zero()).ok_or_else(|| {
                fail(format!("--timeout {v}: not a positive number of seconds")).code(exit::USAGE).into()
            })
        })
        .transpose()
}

pub fn parse_policy(p: &str) -> Result<MergePolicy> {
    p.parse().map_err(|e: String| fail(e).code(exit::USAGE).into())
}

pub fn short(k: &Key) -> String {
    k.to_hex()[..12].to_owned()
}
