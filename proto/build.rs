//! Compiles the gRPC definitions in this folder with a pure-Rust protobuf compiler (no protoc needed).
//!
//! Player API messages (`challenge.v1`) also derive serde, so the REST transport serializes exactly the messages
//! the gRPC transport sends (camelCase JSON, snake_case accepted on input).

const SNAKE_CASE_INPUT_ALIASES: [(&str, &str); 6] = [
    (".challenge.v1.GetChallengesRequest.active_only", "active_only"),
    (".challenge.v1.SetGoalActiveRequest.is_active", "is_active"),
    (".challenge.v1.BatchSelectRequest.goal_ids", "goal_ids"),
    (".challenge.v1.BatchSelectRequest.replace_existing", "replace_existing"),
    (".challenge.v1.RandomSelectRequest.replace_existing", "replace_existing"),
    (".challenge.v1.RandomSelectRequest.exclude_active", "exclude_active"),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = env!("CARGO_MANIFEST_DIR");
    let files = [
        "accelbyte/iam/account/v1/account.proto",
        "accelbyte/social/statistic/v1/statistic.proto",
        "challenge/events/v1/events.proto",
        "challenge/v1/challenge.proto",
        "challenge/admin/v1/admin.proto",
    ];
    let descriptors = protox::compile(files, [proto_root])?;
    let mut builder = tonic_prost_build::configure().build_client(true).build_server(true).type_attribute(
        ".challenge.v1",
        "#[derive(serde::Serialize, serde::Deserialize)] #[serde(rename_all = \"camelCase\", default)]",
    );
    for (field, alias) in SNAKE_CASE_INPUT_ALIASES {
        builder = builder.field_attribute(field, format!("#[serde(alias = \"{alias}\")]"));
    }
    builder.compile_fds(descriptors)?;
    for file in files {
        println!("cargo:rerun-if-changed={proto_root}/{file}");
    }
    Ok(())
}
