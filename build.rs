//! Generates the gRPC and storage types from `proto/`, with the protoc that
//! ships inside `protoc-bin-vendored`, so that a machine without protoc builds.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);

    tonic_prost_build::configure().bytes(".").compile_protos(
        &[
            "proto/modelsync/v1/modelsync.proto",
            "proto/modelsync/storage/v1/manifest.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}
