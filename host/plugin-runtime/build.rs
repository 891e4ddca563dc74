//! Builds the guest plugins (the separate `plugins/` workspace) for `wasm32-wasip2` so that the runtime can embed the
//! builtin rules and tests can load every guest as a real component.
//!
//! The nested cargo uses its own target dir (`<workspace>/target/guest-plugins`) so it never waits on the outer
//! build's lock, and it runs with the outer build's CARGO_*/RUSTFLAGS settings removed: those describe the host
//! crate's build (target, profile, features, flags) and would break or pollute the guest build.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const GUEST_TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace =
        manifest_dir.join("../..").canonicalize().expect("plugin-runtime lives two levels below the workspace");
    let plugins = workspace.join("plugins");
    let target_dir = workspace.join("target").join("guest-plugins");
    let artifacts = target_dir.join(GUEST_TARGET).join("release");

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", workspace.join("wit").display());
    watch_plugin_sources(&plugins);
    println!("cargo:rustc-env=CHALLENGE_GUEST_PLUGIN_DIR={}", artifacts.display());

    ensure_target_installed();

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--release")
        .arg("--target")
        .arg(GUEST_TARGET)
        .arg("--manifest-path")
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if leaks_into_nested_build(key) {
            command.env_remove(key);
        }
    }
    let output = command.output().unwrap_or_else(|e| panic!("could not run cargo to build the guest plugins: {e}"));
    if !output.status.success() {
        panic!(
            "building the guest plugins failed ({}):\n{}\n(command: cargo build --release --target {GUEST_TARGET} \
             --manifest-path {} --target-dir {})",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            plugins.join("Cargo.toml").display(),
            target_dir.display(),
        );
    }
}

/// Environment set for this build script that must not reach the guest build. Registry, network, terminal and
/// jobserver settings stay (so `--offline`, mirrors and the shared job limit still apply).
fn leaks_into_nested_build(key: &str) -> bool {
    const KEEP: [&str; 6] =
        ["CARGO_HOME", "CARGO_NET_", "CARGO_HTTP_", "CARGO_REGISTRIES_", "CARGO_TERM_", "CARGO_MAKEFLAGS"];
    if key.starts_with("CARGO_") {
        return !KEEP.iter().any(|keep| key.starts_with(keep));
    }
    matches!(
        key,
        "RUSTFLAGS"
            | "RUSTDOCFLAGS"
            | "RUSTC"
            | "RUSTC_WRAPPER"
            | "RUSTC_WORKSPACE_WRAPPER"
            | "RUSTC_LINKER"
            | "RUSTDOC"
            | "TARGET"
            | "HOST"
            | "OUT_DIR"
            | "OPT_LEVEL"
            | "PROFILE"
            | "DEBUG"
            | "NUM_JOBS"
    )
}

/// Reruns this script when WIT or any guest source or manifest changes, never for files under target dirs.
fn watch_plugin_sources(plugins: &Path) {
    for file in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", plugins.join(file).display());
    }
    let mut pending = vec![plugins.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !path.is_dir() || name == "target" || name.starts_with('.') {
                continue;
            }
            if path.join("Cargo.toml").is_file() {
                // A member crate: cargo watches the whole directory (sources and manifest).
                println!("cargo:rerun-if-changed={}", path.display());
            } else {
                pending.push(path);
            }
        }
    }
}

/// Installs the guest target through rustup when the toolchain lacks it.
fn ensure_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = |root: &Path| root.join("lib/rustlib").join(GUEST_TARGET).join("lib").is_dir();
    if sysroot.as_deref().is_some_and(installed) {
        return;
    }
    let added = Command::new("rustup").args(["target", "add", GUEST_TARGET]).status();
    if !matches!(added, Ok(status) if status.success()) {
        panic!(
            "the Rust target {GUEST_TARGET} is needed to build the rule plugins and is not installed; \
             `rustup target add {GUEST_TARGET}` failed ({added:?}). Install it for this toolchain and rebuild."
        );
    }
}
