//! The committed inputs of the `message_decode` fuzz target, replayed through its own check
//! (`fuzz/src/message_checks.rs`, included here as the fuzz crate includes this crate's
//! `message.rs`).

use std::path::Path;

use dsf_container::message;

#[path = "../../../fuzz/src/message_checks.rs"]
mod message_checks;

#[test]
fn message_decode_corpus_replays() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut inputs = Vec::new();
    for dir in [fuzz.join("corpus/message_decode"), fuzz.join("regressions/message_decode")] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            inputs.extend(entries.map(|e| e.expect("a directory entry").path()));
        }
    }
    assert!(inputs.len() >= 20, "the message_decode corpus is missing: regenerate the seeds (see fuzz/README.md)");
    for path in inputs {
        let data = std::fs::read(&path).expect("readable input");
        let outcome = std::panic::catch_unwind(|| message_checks::message_decode(&data));
        assert!(outcome.is_ok(), "{} fails its check", path.display());
    }
}
