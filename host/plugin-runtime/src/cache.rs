//! On-disk cache of compiled components.
//!
//! Files are named by the component's sha256 and a digest of the engine's precompile-compatibility hash (Wasmtime
//! version, target, settings), so an engine only ever looks at artifacts it produced. Each file starts with the
//! sha256 of the artifact that follows; a file that is truncated, corrupt or unreadable is ignored (and replaced),
//! and the component is compiled from source instead. Wasmtime artifacts are trusted native code, so the cache dir
//! must be writable only by the host's operator.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

pub(crate) struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
}

impl ComponentCache {
    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..12]);
        ComponentCache { dir, engine_key }
    }

    fn path(&self, component_sha256: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}-{}.cwasm", hex::encode(component_sha256), self.engine_key))
    }

    /// The cached compilation of a component, if a valid one exists.
    pub fn load(&self, engine: &Engine, component_sha256: &[u8; 32]) -> Option<Component> {
        let path = self.path(component_sha256);
        let bytes = fs::read(&path).ok()?;
        let (digest, artifact) = bytes.split_at_checked(32)?;
        if digest != &Sha256::digest(artifact)[..] {
            tracing::warn!(path = %path.display(), "ignoring corrupt precompiled plugin");
            return None;
        }
        // SAFETY: the artifact was written by `store` below from `Component::serialize` of an engine with the same
        // compatibility hash (part of the file name), and its checksum matches, so it is that unmodified output.
        match unsafe { Component::deserialize(engine, artifact) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unusable precompiled plugin");
                None
            }
        }
    }

    /// Stores a compiled component; failures only cost a recompilation later, so they are logged and ignored.
    pub fn store(&self, component: &Component, component_sha256: &[u8; 32]) {
        if let Err(e) = self.try_store(component, component_sha256) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not cache precompiled plugin");
        }
    }

    fn try_store(&self, component: &Component, component_sha256: &[u8; 32]) -> Result<(), String> {
        let artifact = component.serialize().map_err(|e| e.to_string())?;
        fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        let path = self.path(component_sha256);
        // Write then rename, so readers never see a half-written file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        write_file(&tmp, &Sha256::digest(&artifact), &artifact).map_err(|e| e.to_string())?;
        fs::rename(&tmp, &path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            e.to_string()
        })
    }
}

fn write_file(path: &Path, digest: &[u8], artifact: &[u8]) -> std::io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(digest)?;
    file.write_all(artifact)?;
    file.sync_all()
}

/// Feeds `Hash` output into sha256, giving a digest that is stable across processes (unlike `DefaultHasher`).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
