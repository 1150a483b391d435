//! Generates the dialer.v1 servers and clients from `proto/dialer/v1/*.proto` with protox (a
//! pure Rust protobuf compiler: no `protoc` on the build machine), and writes the encoded file
//! descriptor set that server reflection serves.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let dir = root.join("dialer/v1");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "proto") {
            println!("cargo:rerun-if-changed={}", path.display());
            files.push(path);
        }
    }
    files.sort();
    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("dialer_v1_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    // `bytes` fields as `bytes::Bytes` (CSV chunks are passed on without a copy); maps as
    // `BTreeMap` (retry rules and attributes in a stable order).
    tonic_prost_build::configure()
        .bytes(".dialer.v1")
        .btree_map(".dialer.v1")
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
