//! The auditor's memory between runs: the last checkpoint verified, kept as
//! its signed note in `<state dir>/checkpoint`, and the one file writer that
//! never leaves a half-written file behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::AuditError;

/// The saved checkpoint's file in `dir`.
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint")
}

/// The checkpoint note saved in `dir`, if any.
pub fn load(dir: &Path) -> Result<Option<String>, AuditError> {
    let path = checkpoint_path(dir);
    match std::fs::read_to_string(&path) {
        Ok(note) => Ok(Some(note)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AuditError::io(path, e)),
    }
}

/// Saves `note` in `dir` (created if needed).
pub fn save(dir: &Path, note: &str) -> Result<(), AuditError> {
    std::fs::create_dir_all(dir).map_err(|e| AuditError::io(dir, e))?;
    write_atomically(&checkpoint_path(dir), note.as_bytes())
}

/// Writes `bytes` to `path` through a temporary file in the same directory,
/// synced, then renamed over it: a crash leaves the old file or the new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), AuditError> {
    let name = path
        .file_name()
        .ok_or_else(|| AuditError::Usage(format!("{} is not a file name", path.display())))?;
    let mut temporary_name = name.to_owned();
    temporary_name.push(format!(".tmp-{}", std::process::id()));
    let temporary = path.with_file_name(temporary_name);
    let written = std::fs::File::create(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&temporary, path)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(AuditError::io(path, e));
    }
    // The rename is durable once the directory is synced too (where it can be opened).
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn saves_and_loads_and_replaces() {
        let dir = std::env::temp_dir().join(format!("conclave-audit-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(load(&dir).unwrap(), None);
        save(&dir.join("nested"), "one\n").unwrap();
        assert_eq!(load(&dir.join("nested")).unwrap().as_deref(), Some("one\n"));
        save(&dir.join("nested"), "two\n").unwrap();
        assert_eq!(load(&dir.join("nested")).unwrap().as_deref(), Some("two\n"));
        let leftovers = std::fs::read_dir(dir.join("nested")).unwrap().count();
        assert_eq!(leftovers, 1, "only the checkpoint file remains");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
