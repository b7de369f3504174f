//! Tests of `fuzz_corpus`: every committed fuzz input, replayed through its target's checks.
//!
//! The checks are the fuzz crate's own (`fuzz/src/checks.rs`, included below), so an input
//! replays here exactly as the fuzzer ran it. Inputs come from `fuzz/corpus/<target>/` (the
//! seed corpus and what fuzzing added) and `fuzz/regressions/<target>/` (inputs that once
//! crashed a target).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use dsf::Registry;

#[path = "../../../fuzz/src/checks.rs"]
mod checks;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::builtin)
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `dir`, sorted; an empty list if `dir` does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display())).path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `check` on every corpus and regression input of `target`. The corpus folder must hold
/// at least `min_corpus` files, so the test cannot pass on a missing or emptied corpus. Every
/// failing input is reported, not only the first.
fn replay(target: &str, check: fn(&Registry, &[u8]), min_corpus: usize) {
    let corpus_dir = fuzz_dir().join("corpus").join(target);
    let corpus = files(&corpus_dir);
    assert!(
        corpus.len() >= min_corpus,
        "{} holds {} inputs, expected at least {min_corpus}: regenerate the seeds (see fuzz/README.md)",
        corpus_dir.display(),
        corpus.len()
    );
    let regressions = files(&fuzz_dir().join("regressions").join(target));
    let mut failures = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(registry(), &data))) {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            failures.push(format!("{}: {message}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: {} of {} inputs fail:\n{}",
        failures.len(),
        corpus.len() + regressions.len(),
        failures.join("\n")
    );
}

#[test]
fn structure_decode_corpus_replays() {
    replay("structure_decode", checks::structure_decode, 20);
}

#[test]
fn structure_rekeyed_corpus_replays() {
    replay("structure_rekeyed", checks::structure_rekeyed, 20);
}

#[test]
fn element_verify_corpus_replays() {
    replay("element_verify", checks::element_verify, 30);
}

#[test]
fn document_parse_corpus_replays() {
    replay("document_parse", checks::document_parse, 15);
}

#[test]
fn element_rekeyed_corpus_replays() {
    replay("element_rekeyed", checks::element_rekeyed, 30);
}
