//! The embedded wallboard is built from the sources in the repository: `web/`'s build stamps
//! `crates/vigie-web/assets/SOURCES.sha256` with a digest of every source it was built from
//! (the page's code, its build settings and the protos), and this test recomputes that digest
//! the same way. A source changed without rebuilding fails here, with the command to run.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every file under `dir`, as repository-relative paths with `/` separators.
fn files_under(root: &Path, dir: &str, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return;
    };
    for entry in entries {
        let entry = entry.expect("directory entry");
        let name = entry.file_name().into_string().expect("UTF-8 file name");
        let relative = format!("{dir}/{name}");
        if entry.file_type().expect("file type").is_dir() {
            files_under(root, &relative, found);
        } else {
            found.push(relative);
        }
    }
}

/// The digest `web/scripts/stamp.mjs` writes: over the sorted paths, each path's bytes, a 0
/// byte, the file's bytes, a 0 byte.
fn sources_digest(root: &Path) -> String {
    let mut paths = Vec::new();
    files_under(root, "web/src", &mut paths);
    files_under(root, "web/public", &mut paths);
    for file in [
        "web/index.html",
        "web/package.json",
        "web/package-lock.json",
        "web/vite.config.ts",
        "web/tsconfig.json",
    ] {
        paths.push(file.to_owned());
    }
    let mut protos = Vec::new();
    files_under(root, "proto/vigie/v1", &mut protos);
    paths.extend(protos.into_iter().filter(|path| {
        path.ends_with(".proto") && path.matches('/').count() == 3 // not in subdirectories
    }));
    paths.sort();
    let mut hasher = Sha256::new();
    for path in &paths {
        let bytes = std::fs::read(root.join(path))
            .unwrap_or_else(|error| panic!("cannot read {path}: {error}"));
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(&bytes);
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[test]
fn the_embedded_wallboard_is_built_from_the_current_sources() {
    let root = repository();
    let stamp_path = root.join("crates/vigie-web/assets/SOURCES.sha256");
    let stamp = std::fs::read_to_string(&stamp_path).unwrap_or_else(|error| {
        panic!(
            "cannot read {}: {error}; build the wallboard: cd web && npm ci && npm run build",
            stamp_path.display()
        )
    });
    assert_eq!(
        stamp.trim(),
        sources_digest(&root),
        "the embedded wallboard is older than its sources (web/ or proto/ changed): rebuild it with `cd web && npm ci && npm run build`, then commit crates/vigie-web/assets"
    );
}
