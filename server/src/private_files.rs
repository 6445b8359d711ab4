//! Every file the relay writes is its owner's alone (mode 0600), whatever
//! the data directory's own mode, and a key file that others can read is
//! refused rather than used.
//!
//! SQLite creates `conclave.db`, `-wal` and `-shm` itself, with the mode of
//! the process umask (0644 under the usual 022). Two guards: the process
//! umask becomes 077 before any file is opened, and the database file is
//! created 0600 before SQLite opens it (SQLite gives its `-wal` and `-shm`
//! the mode of the database file). An existing database file open to
//! others is tightened.

use std::path::Path;

use crate::error::ServerError;

/// Mode bits for group and others.
#[cfg(unix)]
const GROUP_OR_OTHERS: u32 = 0o077;

/// Makes every file and directory this process creates from now on
/// unreadable to group and others (umask 077).
pub fn restrict_new_files() {
    #[cfg(unix)]
    {
        let _previous = rustix::process::umask(rustix::fs::Mode::from_raw_mode(GROUP_OR_OTHERS));
    }
}

/// Creates `path` (empty, mode 0600) if it does not exist, and takes group
/// and others' permissions away if it does.
pub fn create_or_restrict(path: &Path) -> Result<(), ServerError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map_err(|e| ServerError::file("create", path, e))?;
    restrict_if_present(path)
}

/// Takes group and others' permissions away from `path` if it exists. For
/// SQLite's `-wal` and `-shm`, which another process closing the database
/// (an `admin` command, a node stopping) may delete at any moment: gone is
/// as good as private, and creating one here would leave a stray file.
pub fn restrict_if_present(path: &Path) -> Result<(), ServerError> {
    #[cfg(unix)]
    {
        use std::io::ErrorKind::NotFound;
        use std::os::unix::fs::PermissionsExt;
        let mode = match std::fs::metadata(path) {
            Ok(metadata) => metadata.permissions().mode(),
            Err(e) if e.kind() == NotFound => return Ok(()),
            Err(e) => return Err(ServerError::file("read", path, e)),
        };
        if mode & GROUP_OR_OTHERS != 0 {
            match std::fs::set_permissions(
                path,
                std::fs::Permissions::from_mode(mode & !GROUP_OR_OTHERS),
            ) {
                Err(e) if e.kind() != NotFound => {
                    return Err(ServerError::file("restrict the mode of", path, e));
                }
                _ => {}
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Refuses a key file that exists and that group or others may read or
/// write: one line naming the file and the fix.
pub fn check_key_file(path: &Path) -> Result<(), ServerError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(metadata) = std::fs::metadata(path) else {
            // Missing: created 0600 when it is first needed.
            return Ok(());
        };
        let mode = metadata.permissions().mode() & 0o777;
        if mode & GROUP_OR_OTHERS != 0 {
            return Err(ServerError::Key(format!(
                "key file {} is open to group or others (mode {mode:04o}): refusing to use it; \
                 run `chmod 600 {}` and start again",
                path.display(),
                path.display()
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Creates `path` (it must not exist) readable by the owner alone, and
/// writes `contents` durably.
pub(crate) fn write_secret_file(
    path: &Path,
    what: &str,
    contents: &[u8],
) -> Result<(), ServerError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| ServerError::file(format!("create {what} file"), path, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| ServerError::file(format!("write {what} file"), path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn open_key_files_are_refused_and_new_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("conclave-modes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("server.key");
        assert!(
            check_key_file(&key).is_ok(),
            "a missing key is created later"
        );
        std::fs::write(&key, b"k").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = check_key_file(&key).unwrap_err();
        assert!(matches!(refused, ServerError::Key(_)), "{refused:?}");
        let refused = refused.to_string();
        assert!(
            refused.contains("chmod 600") && refused.contains("server.key"),
            "{refused}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(check_key_file(&key).is_ok());

        let db = dir.join("conclave.db");
        std::fs::write(&db, b"").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        create_or_restrict(&db).unwrap();
        let mode = std::fs::metadata(&db).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        // SQLite's side files: tightened if there, and neither made nor an
        // error if another process's close just deleted them.
        let wal = dir.join("conclave.db-wal");
        restrict_if_present(&wal).unwrap();
        assert!(!wal.exists(), "a missing side file is not created");
        std::fs::write(&wal, b"").unwrap();
        std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o644)).unwrap();
        restrict_if_present(&wal).unwrap();
        let mode = std::fs::metadata(&wal).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
