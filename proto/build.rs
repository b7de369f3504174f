//! Compiles `protos/**/*.proto` with prost and writes, beside the generated modules:
//! - `descriptor_set.bin`: the encoded `FileDescriptorSet`, for reflection;
//! - `identified.rs`: an `Identified` impl for every message that declares a
//!   `_MessageTypeIdentifier` enum.
//!
//! `protoc` comes from the `protoc-bin-vendored` crate unless `$PROTOC` names one.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use heck::{ToSnakeCase, ToUpperCamelCase};
use prost::Message as _;
use prost_types::FileDescriptorSet;

fn main() {
    let root = PathBuf::from("protos");
    let mut files = Vec::new();
    collect_protos(&root, &mut files);
    files.sort();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    println!("cargo:rerun-if-changed=protos");
    println!("cargo:rerun-if-env-changed=PROTOC");

    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set"));
    let descriptor_path = out.join("descriptor_set.bin");
    let mut config = prost_build::Config::new();
    if std::env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path().expect("vendored protoc is available"));
    }
    config
        .file_descriptor_set_path(&descriptor_path)
        .include_file("generated.rs")
        .compile_protos(&files, &[&root])
        .expect("protos compile");

    let bytes = std::fs::read(&descriptor_path).expect("descriptor set was written");
    let set = FileDescriptorSet::decode(bytes.as_slice()).expect("descriptor set decodes");
    std::fs::write(out.join("identified.rs"), identified_impls(&set)).expect("write identified.rs");

    #[cfg(feature = "grpc")]
    compile_grpc(&root);
}

/// The datastore's gRPC service (`grpc/dsf/datastore.proto`), with tonic's client and server.
/// Its messages refer to `dsf.store` messages generated above.
#[cfg(feature = "grpc")]
fn compile_grpc(root: &Path) {
    println!("cargo:rerun-if-changed=grpc");
    let mut config = prost_build::Config::new();
    if std::env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path().expect("vendored protoc is available"));
    }
    tonic_prost_build::configure()
        .build_transport(false)
        .extern_path(".dsf.store", "crate::dsf::store")
        .compile_with_config(config, &[Path::new("grpc/dsf/datastore.proto")], &[Path::new("grpc"), root])
        .expect("gRPC protos compile");
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("protos folder is readable") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect_protos(&path, out);
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
}

/// One `impl Identified` per top-level message carrying a `_MessageTypeIdentifier` enum.
fn identified_impls(set: &FileDescriptorSet) -> String {
    let mut code = String::new();
    for file in &set.file {
        let package = file.package();
        let module: Vec<String> = package.split('.').map(rust_ident).collect();
        for message in &file.message_type {
            let Some(ident) = message.enum_type.iter().find(|e| e.name() == "_MessageTypeIdentifier") else {
                continue;
            };
            let value_of = |name: &str| {
                ident
                    .value
                    .iter()
                    .find(|v| v.name() == name)
                    .map(|v| v.number())
                    .unwrap_or_else(|| panic!("{}.{} lacks {name}", package, message.name()))
            };
            let (id, version) = (value_of("_ID"), value_of("_VERSION"));
            let rust_path = format!("crate::{}::{}", module.join("::"), message.name().to_upper_camel_case());
            let _ = writeln!(
                code,
                "impl crate::Identified for {rust_path} {{\n    const OBJECT_ID: i32 = {id};\n    const VERSION: i32 = {version};\n    const FULL_NAME: &'static str = \"{package}.{name}\";\n}}",
                name = message.name()
            );
        }
    }
    code
}

/// A package segment as prost names its module: snake case, keywords raw.
fn rust_ident(segment: &str) -> String {
    let name = segment.to_snake_case();
    match name.as_str() {
        "type" | "mod" | "fn" | "struct" | "enum" | "impl" | "trait" | "use" | "match" | "ref" => {
            format!("r#{name}")
        }
        _ => name,
    }
}
