//! Measures the DSF encode + hash pipeline: what a commit does for every new object.
//!
//! For each requested size, a `net.ooici.play.TestObj` whose encoding is exactly that many
//! bytes is prost-encoded and keyed with `HashAlgorithm::Sha1.element_key` (ION's
//! `SHA1(SHA1(value) ‖ GPBType)`), over and over, for a fixed time. The figure is encoded-value
//! throughput in decimal MB/s (10^6 bytes of encoded value per second), the best of a few
//! rounds.
//!
//! ```text
//! hashpipe [--seconds S] [--rounds R] [--breakdown] [SIZE...]
//! ```
//!
//! Stdout gets one line per size, `SIZE MBPS` (machine readable, for `scripts/compare hash`);
//! with `--breakdown`, stderr also gets the throughput of each stage alone.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use dsf::proto::net::ooici::play::TestObj;
use dsf::{HashAlgorithm, TypeId};
use dsf_benches::{DEFAULT_SEED, sized_test_obj};
use prost::Message as _;
use sha1::Digest as _;

const USAGE: &str = "usage: hashpipe [--seconds S] [--rounds R] [--breakdown] [SIZE...]

Measures prost encoding + DSF SHA-1 element keys of a TestObj of exactly SIZE encoded bytes
(default sizes: 256 1024). Prints `SIZE MBPS` per size (decimal MB of encoded value per
second, best of R rounds of S seconds; defaults: 3 rounds of 2 s).
--breakdown also prints the throughput of each stage alone to stderr.";

/// Loop iterations between two reads of the clock.
const BATCH: u64 = 512;

struct Options {
    seconds: f64,
    rounds: u32,
    breakdown: bool,
    sizes: Vec<usize>,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options { seconds: 2.0, rounds: 3, breakdown: false, sizes: Vec::new() };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--seconds" => {
                opts.seconds = value("--seconds")?.parse().map_err(|e| format!("--seconds: {e}"))?;
                if !opts.seconds.is_finite() || opts.seconds <= 0.0 {
                    return Err("--seconds must be a positive number".into());
                }
            }
            "--rounds" => {
                opts.rounds = value("--rounds")?.parse().map_err(|e| format!("--rounds: {e}"))?;
                if opts.rounds == 0 {
                    return Err("--rounds must be at least 1".into());
                }
            }
            "--breakdown" => opts.breakdown = true,
            size => {
                let size: usize = size.parse().map_err(|_| format!("unexpected argument {size:?}\n\n{USAGE}"))?;
                if size < 64 {
                    return Err(format!("size {size}: the smallest object measured is 64 bytes"));
                }
                opts.sizes.push(size);
            }
        }
    }
    if opts.sizes.is_empty() {
        opts.sizes = vec![256, 1024];
    }
    Ok(opts)
}

/// Runs `step` in batches until `seconds` have passed; returns iterations per second.
fn rate(seconds: f64, step: &mut impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut iterations = 0u64;
    loop {
        for _ in 0..BATCH {
            step();
        }
        iterations += BATCH;
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= seconds {
            return iterations as f64 / elapsed;
        }
    }
}

/// The best throughput, in MB/s of `bytes_per_step`, over `rounds` runs of `seconds`, after a
/// short warm-up.
fn best_mbps(opts: &Options, bytes_per_step: usize, mut step: impl FnMut()) -> f64 {
    rate(opts.seconds.min(0.25), &mut step);
    (0..opts.rounds).map(|_| rate(opts.seconds, &mut step)).fold(0.0, f64::max) * bytes_per_step as f64 / 1e6
}

/// The pipeline as measured: encode into a reused buffer, then compute the element key.
fn pipeline(obj: &TestObj, ty: TypeId, buf: &mut Vec<u8>) {
    buf.clear();
    black_box(obj).encode(buf).expect("a Vec grows as needed");
    black_box(HashAlgorithm::Sha1.element_key(black_box(buf.as_slice()), ty));
}

/// ION's SHA-1 element key, `SHA1(SHA1(value) ‖ GPBType)`, computed on whole blocks with the
/// SHA-1 compression function instead of the streaming hasher. Gives the same key as
/// `HashAlgorithm::Sha1.element_key`; measured beside it to size what a block-level
/// implementation in `dsf::key` would gain.
fn block_level_key(value: &[u8], ty: TypeId) -> [u8; 20] {
    const H0: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
    let mut state = H0;
    let (blocks, rest) = value.as_chunks::<64>();
    sha1::block_api::compress(&mut state, blocks);
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let end = if rest.len() + 9 <= 64 { 64 } else { 128 };
    tail[end - 8..end].copy_from_slice(&(value.len() as u64 * 8).to_be_bytes());
    sha1::block_api::compress(&mut state, tail[..end].as_chunks::<64>().0);

    // The outer message (a 20-byte digest and at most 22 bytes of GPBType) fits one block.
    let mut outer = [0u8; 64];
    for (chunk, word) in outer[..20].chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    let mut ty_buf = [0u8; 24];
    let ty_len = ty.encode_into(&mut ty_buf);
    outer[20..20 + ty_len].copy_from_slice(&ty_buf[..ty_len]);
    outer[20 + ty_len] = 0x80;
    outer[56..].copy_from_slice(&((20 + ty_len) as u64 * 8).to_be_bytes());
    let mut state = H0;
    sha1::block_api::compress(&mut state, &[outer]);
    let mut key = [0u8; 20];
    for (chunk, word) in key.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    key
}

fn breakdown(opts: &Options, obj: &TestObj, ty: TypeId, size: usize) {
    let value = obj.encode_to_vec();
    assert_eq!(
        block_level_key(&value, ty).as_slice(),
        HashAlgorithm::Sha1.element_key(&value, ty).as_bytes(),
        "the block-level key must equal dsf's"
    );
    let mut buf = Vec::with_capacity(size);
    let mut buf2 = Vec::with_capacity(size);
    let stages: [(&str, f64); 6] = [
        (
            "encode_to_vec + element key (a fresh Vec per object)",
            best_mbps(opts, size, || {
                let value = black_box(obj).encode_to_vec();
                black_box(HashAlgorithm::Sha1.element_key(&value, ty));
            }),
        ),
        (
            "encode only (reused buffer)",
            best_mbps(opts, size, || {
                buf.clear();
                black_box(obj).encode(&mut buf).expect("a Vec grows as needed");
                black_box(buf.as_slice());
            }),
        ),
        (
            "element key only (SHA-1 of value, then of digest + type)",
            best_mbps(opts, size, || {
                black_box(HashAlgorithm::Sha1.element_key(black_box(&value), ty));
            }),
        ),
        (
            "block-level element key only (not dsf's code: a candidate for dsf::key)",
            best_mbps(opts, size, || {
                black_box(block_level_key(black_box(&value), ty));
            }),
        ),
        (
            "pipeline with the block-level element key",
            best_mbps(opts, size, || {
                buf2.clear();
                black_box(obj).encode(&mut buf2).expect("a Vec grows as needed");
                black_box(block_level_key(black_box(buf2.as_slice()), ty));
            }),
        ),
        (
            "plain SHA-1 of the value (sha1 crate)",
            best_mbps(opts, size, || {
                black_box(sha1::Sha1::digest(black_box(&value)));
            }),
        ),
    ];
    for (stage, mbps) in stages {
        eprintln!("  {size:>6} B  {mbps:>9.1} MB/s  {stage}");
    }
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("hashpipe: {e}");
            return ExitCode::from(2);
        }
    };
    let ty = TypeId::of::<TestObj>();
    for &size in &opts.sizes {
        let obj = sized_test_obj(size, DEFAULT_SEED);
        let mut buf = Vec::with_capacity(size);
        let mbps = best_mbps(&opts, size, || pipeline(&obj, ty, &mut buf));
        println!("{size} {mbps:.2}");
        if opts.breakdown {
            breakdown(&opts, &obj, ty, size);
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_level_key_equals_dsf_element_key() {
        let value: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        let types = [TypeId::new(1, 1), TypeId::new(20010, 1), TypeId::new(-1, 1), TypeId::new(i32::MAX, i32::MIN)];
        for len in 0..=value.len() {
            for ty in types {
                assert_eq!(
                    block_level_key(&value[..len], ty).as_slice(),
                    HashAlgorithm::Sha1.element_key(&value[..len], ty).as_bytes(),
                    "length {len}, type {ty}"
                );
            }
        }
    }
}
