//! Generates the Rust code of every `.proto` file under `proto/vigie/v1/` with `protox` (a
//! protobuf compiler in Rust) and `tonic-prost-build` (messages, gRPC clients and servers), so
//! that building needs no `protoc`. The compiled descriptor set is written beside the code for
//! gRPC server reflection.

use std::error::Error;
use std::path::{Path, PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    let package_dir = proto_root.join("vigie/v1");
    // A directory makes Cargo rerun the script when any file below it changes or appears.
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let files = proto_files(&package_dir)?;
    if files.is_empty() {
        return Err(format!("no .proto file under {}", package_dir.display()).into());
    }
    let descriptors = protox::compile(&files, [&proto_root])?;
    std::fs::write(
        out_dir.join("vigie_v1_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}

/// The `.proto` files of the package, sorted so that generation is deterministic.
fn proto_files(dir: &Path) -> Result<Vec<PathBuf>, Box<dyn Error>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|ext| ext == "proto") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
