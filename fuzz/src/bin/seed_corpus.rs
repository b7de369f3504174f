//! Writes the seed corpus into `corpus/<target>/`, one file per input, named by the SHA-1 of
//! its content (as libFuzzer names the inputs it adds). Existing files are kept, so inputs the
//! fuzzer added survive; pass `--clean` to empty the folders first.
//!
//! Every seed is run through its target's checks before it is written.
//!
//! Usage: `cargo run --manifest-path fuzz/Cargo.toml --bin seed_corpus [-- --clean]`

use std::path::Path;

use sha1::Digest as _;

type Check = fn(&dsf::Registry, &[u8]);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clean = std::env::args().skip(1).any(|a| a == "--clean");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let envelopes = dsf_fuzz::seeds::structure_decode()?;
    let elements = dsf_fuzz::seeds::element_verify()?;
    let targets: [(&str, Vec<Vec<u8>>, Check); 6] = [
        ("structure_decode", envelopes.clone(), dsf_fuzz::checks::structure_decode),
        ("structure_rekeyed", envelopes, dsf_fuzz::checks::structure_rekeyed),
        ("element_verify", elements.clone(), dsf_fuzz::checks::element_verify),
        ("element_rekeyed", elements, dsf_fuzz::checks::element_rekeyed),
        ("document_parse", dsf_fuzz::seeds::document_parse()?, dsf_fuzz::checks::document_parse),
        ("message_decode", dsf_fuzz::seeds::message_decode()?, |_, data| {
            dsf_fuzz::message_checks::message_decode(data)
        }),
    ];
    for (target, seeds, check) in targets {
        let dir = corpus.join(target);
        if clean && dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let mut written = 0;
        for seed in &seeds {
            check(dsf_fuzz::registry(), seed);
            let name: String = sha1::Sha1::digest(seed).iter().map(|b| format!("{b:02x}")).collect();
            let path = dir.join(name);
            if !path.exists() {
                std::fs::write(&path, seed)?;
                written += 1;
            }
        }
        println!("{target}: {} seeds, {written} new, in {}", seeds.len(), dir.display());
    }
    Ok(())
}
