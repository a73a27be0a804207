//! Helpers shared by the fuzz targets (included with `#[path]`).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Once;

/// A scratch folder private to this process; the readers only take paths, so each input is
/// written to a file here first.
pub fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("scrna-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("create scratch folder");
    d
}

/// Writes `data` to `name` in the scratch folder and returns the path.
pub fn write(name: &str, data: &[u8]) -> PathBuf {
    let p = scratch().join(name);
    std::fs::write(&p, data).expect("write fuzz input");
    p
}

static HOOK: Once = Once::new();

/// For the HDF5 targets. The readers wrap `hdf5-pure` in `catch_unwind` (a panic of the
/// dependency on a corrupt file becomes `Error::Hdf5`), but libfuzzer-sys's panic hook would
/// abort on the caught panic. This hook aborts only for panics raised in this crate's code
/// (`src/...`) and lets the readers' guard handle panics raised inside dependencies, printing
/// each dependency panic location once so that they can be counted and reported upstream.
pub fn abort_only_on_own_panics() {
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        let seen = std::sync::Mutex::new(std::collections::HashSet::<String>::new());
        std::panic::set_hook(Box::new(move |info| {
            let file = info.location().map(|l| l.file().to_string()).unwrap_or_default();
            let ours = file.starts_with("src/") || file.contains("/wt-fuzz/src/");
            if ours {
                default(info);
                std::process::abort();
            }
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            if seen.lock().map(|mut s| s.insert(at.clone())).unwrap_or(false) {
                eprintln!("[dependency panic caught by the reader's guard] {at}: {info}");
            }
        }));
    });
}
