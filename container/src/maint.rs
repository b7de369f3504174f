//! `dsf-container fsck` and `dsf-container gc`: maintenance of a datastore's store, through
//! the walks of `dsf::store::walk`.
//!
//! Results go to standard output, progress (counts) to standard error. Exit codes: 0 clean
//! (or collected), 5 the store is damaged (fsck found problems; gc refuses to delete), 1 any
//! other failure, 2 a usage error.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dsf::Registry;
use dsf::store::Store;
use dsf::store::walk::{self, GcOptions, Progress, WalkError};

use crate::datastore::GC_PAUSE;

/// Exit code: the store is damaged.
pub const EXIT_DAMAGED: u8 = 5;

/// The default grace period of gc: what was written within it is kept.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

/// A maintenance command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Verify everything the heads reach.
    Fsck,
    /// Remove what no head reaches.
    Gc {
        /// Only report.
        dry_run: bool,
        /// Keep what was written within this period before the gc started.
        grace: Duration,
    },
}

/// Prints counts to standard error at most once a second, and every phase's first count.
struct Reporter {
    last: Option<Instant>,
    phase: &'static str,
}

impl Reporter {
    fn new() -> Reporter {
        Reporter { last: None, phase: "" }
    }

    fn report(&mut self, p: Progress) {
        let (phase, n) = match p {
            Progress::Repositories(n) => ("repositories read", n),
            Progress::Commits(n) => ("commits checked", n),
            Progress::Objects(n) => ("objects checked", n),
            Progress::Listed(n) => ("entries listed", n),
            Progress::Deleted(n) => ("entries deleted", n),
        };
        let due = self.last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if phase != self.phase || due {
            eprintln!("{n} {phase}");
            self.phase = phase;
            self.last = Some(Instant::now());
        }
    }
}

/// Runs a maintenance command on a store; returns the exit code.
pub async fn run<S: Store>(store: &S, registry: &Registry, command: Command) -> anyhow::Result<u8> {
    let mut reporter = Reporter::new();
    let mut out = std::io::stdout().lock();
    match command {
        Command::Fsck => {
            let report = walk::fsck(store, registry, |p| reporter.report(p)).await?;
            for p in &report.problems {
                writeln!(out, "error: {p}")?;
            }
            writeln!(
                out,
                "checked {} repositories, {} heads, {} commits and {} objects: {}",
                report.repositories,
                report.heads,
                report.commits,
                report.objects,
                if report.problems.is_empty() {
                    "no problems".to_owned()
                } else {
                    format!("{} problem(s)", report.problems.len())
                }
            )?;
            Ok(if report.problems.is_empty() { 0 } else { EXIT_DAMAGED })
        }
        Command::Gc { dry_run, grace } => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
            let options = GcOptions { now, grace, pause: GC_PAUSE, dry_run };
            let result =
                walk::gc(store, registry, options, Vec::new(), tokio::time::sleep, |p| reporter.report(p)).await;
            let report = match result {
                Ok(r) => r,
                Err(WalkError::Damaged(problems)) => {
                    for p in &problems {
                        writeln!(out, "error: {p}")?;
                    }
                    writeln!(
                        out,
                        "gc refused: what the heads reach is damaged ({} problem(s)); nothing was deleted \
                         (run `dsf-container fsck`)",
                        problems.len()
                    )?;
                    return Ok(EXIT_DAMAGED);
                }
                Err(e) => return Err(e.into()),
            };
            let verb = if dry_run { "would remove" } else { "removed" };
            for k in &report.removed_commits {
                writeln!(out, "{verb} commit {k}")?;
            }
            for k in &report.removed_objects {
                writeln!(out, "{verb} object {k}")?;
            }
            let kept =
                report.listed_blobs + report.listed_rows - report.removed_objects.len() - report.removed_commits.len();
            writeln!(
                out,
                "{verb} {} objects and {} commits; kept {kept} entries ({} reached from {} heads of {} repositories, \
                 {} written within the grace period, {} written again during the gc)",
                report.removed_objects.len(),
                report.removed_commits.len(),
                report.reached.commits + report.reached.objects,
                report.reached.heads,
                report.reached.repositories,
                report.fresh,
                report.revived,
            )?;
            Ok(0)
        }
    }
}
