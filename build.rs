//! Generates the gRPC and storage types from `proto/`, with the protoc that
//! ships inside `protoc-bin-vendored`, so that a machine without protoc builds.
//! The descriptor set it also writes serves gRPC reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);

    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .bytes(".")
        .file_descriptor_set_path(out.join("modelsync_descriptor.bin"))
        .compile_protos(
            &[
                "proto/modelsync/v1/modelsync.proto",
                "proto/modelsync/storage/v1/manifest.proto",
            ],
            &["proto"],
        )?;
    Ok(())
}
