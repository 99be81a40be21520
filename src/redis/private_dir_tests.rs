use std::os::unix::fs::{symlink, PermissionsExt};

use super::*;

/// A uid that is not ours: `nobody`.
const OTHER_UID: u32 = 65534;

fn base() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn mkdir(path: &Path, mode: u32) {
    std::fs::create_dir(path).expect("mkdir");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Gives `path` to [`OTHER_UID`]; `false` when we may not (not root).
fn give_away(path: &Path) -> bool {
    std::os::unix::fs::lchown(path, Some(OTHER_UID), Some(OTHER_UID)).is_ok()
}

#[test]
fn creates_a_fresh_private_folder_with_an_unpredictable_name() {
    let base = base();
    let first = create(base.path()).expect("create");
    let second = create(base.path()).expect("create");
    assert_ne!(first, second);
    for dir in [&first, &second] {
        verify(dir).expect("verify");
        let name = dir.file_name().unwrap().to_str().unwrap();
        let rest = name.strip_prefix(PREFIX).expect("prefix");
        let (pid, random) = rest.split_once('-').expect("pid-random");
        assert_eq!(pid, std::process::id().to_string());
        assert_eq!(random.len(), 16, "{name}");
        assert!(random.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
    }
}

#[test]
fn refuses_a_folder_with_the_wrong_mode_a_symlink_or_a_file() {
    let base = base();
    let open = base.path().join("open");
    mkdir(&open, 0o755);
    assert!(matches!(
        verify(&open),
        Err(DirError::Mode { mode: 0o755, .. })
    ));
    let sticky = base.path().join("sticky");
    mkdir(&sticky, 0o1777);
    assert!(matches!(verify(&sticky), Err(DirError::Mode { .. })));

    let good = base.path().join("good");
    mkdir(&good, 0o700);
    verify(&good).expect("a 0700 folder of ours");
    let link = base.path().join("link");
    symlink(&good, &link).expect("symlink");
    assert!(matches!(verify(&link), Err(DirError::NotADirectory(_))));

    let file = base.path().join("file");
    std::fs::write(&file, b"").expect("file");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    assert!(matches!(verify(&file), Err(DirError::NotADirectory(_))));
    assert!(matches!(
        verify(&base.path().join("absent")),
        Err(DirError::Io { .. })
    ));
}

#[test]
fn refuses_a_folder_another_user_owns() {
    let base = base();
    let theirs = base.path().join("theirs");
    mkdir(&theirs, 0o700);
    if !give_away(&theirs) {
        eprintln!("skipped: not root, cannot chown to {OTHER_UID}");
        return;
    }
    assert!(matches!(
        verify(&theirs),
        Err(DirError::Owner {
            owner: OTHER_UID,
            ..
        })
    ));
}

#[test]
fn removes_only_our_own_folders_of_dead_processes() {
    let base = base();
    // pid 0 is never a process's; /proc/0 does not exist.
    let dead_new = base.path().join(format!("{PREFIX}0-0123456789abcdef"));
    let dead_old = base.path().join(format!("{PREFIX}0"));
    let alive = base.path().join(format!("{PREFIX}1-0123456789abcdef"));
    let own = base
        .path()
        .join(format!("{PREFIX}{}-00", std::process::id()));
    let unrelated = base.path().join("something-else-0");
    for dir in [&dead_new, &dead_old, &alive, &own, &unrelated] {
        mkdir(dir, 0o700);
    }
    let target = base.path().join("target");
    mkdir(&target, 0o700);
    let dead_link = base.path().join(format!("{PREFIX}0-link"));
    symlink(&target, &dead_link).expect("symlink");
    let theirs = base.path().join(format!("{PREFIX}0-theirs"));
    mkdir(&theirs, 0o700);
    let gave_away = give_away(&theirs);

    remove_stale(base.path());

    assert!(!dead_new.exists() && !dead_old.exists());
    assert!(alive.exists() && own.exists() && unrelated.exists());
    assert!(dead_link.symlink_metadata().is_ok() && target.exists());
    if gave_away {
        assert!(theirs.exists(), "removed another user's folder");
    }
}
