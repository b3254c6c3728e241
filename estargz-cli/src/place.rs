//! Putting a finished output, a file or a directory, at its destination in
//! one step: whatever signal arrives, the destination holds either what it
//! held before or the complete new output.
//!
//! The new output, and anything moved out of the way, stay inside the
//! caller's temporary directory, which the signal handler removes (see
//! `output`): at every instant, what that directory holds may be deleted.
//! With `RENAME_EXCHANGE` one rename swaps the two, so the replaced
//! destination lands exactly where the new output was.

use crate::output::without_interruption;
use anyhow::{anyhow, Context, Result};
use rustix::fs::{renameat_with, RenameFlags, CWD};
use rustix::io::Errno;
use std::io;
use std::path::Path;

/// Moves `new` to `dst`.
///
/// Without `force`, `dst` must be absent, or an empty directory when `new`
/// is a directory, at the moment of the rename; a destination that appeared
/// meanwhile (a concurrent run's, say) is left alone and the call fails.
/// That check and the rename are one system call, so no lock is needed and
/// nothing is left behind.
///
/// With `force`, `dst` is replaced and what it held ends up at `new` or at
/// `aside`; both must lie inside the tracked temporary directory.
///
/// The signal handler is held off throughout: it removes the temporary
/// directory with `remove_dir_all`, which is not atomic, and a rename that
/// ran while it was half way through would put a half-deleted image at
/// `dst` (seen in a run interrupted at the wrong moment: a DST without its
/// `index.json`). Held off, the handler runs either before the rename
/// (DST keeps the old image) or after it (DST has the new one).
pub fn place(new: &Path, dst: &Path, aside: &Path, force: bool) -> Result<()> {
    without_interruption(|| {
        if force {
            replace(new, dst, aside)
        } else {
            create(new, dst)
        }
    })
}

fn create(new: &Path, dst: &Path) -> Result<()> {
    let renamed = if new.is_dir() {
        // rename(2) puts a directory only where nothing is or an empty
        // directory is: a non-empty one or a file is an error.
        std::fs::rename(new, dst)
    } else {
        rename_noreplace(new, dst)
    };
    match renamed {
        Ok(()) => Ok(()),
        Err(e) if occupied(&e) => Err(anyhow!(
            "{} appeared or was filled while converting (by another convert-image \
             run?); it is left as it is and the new image discarded (--force replaces it)",
            dst.display()
        )),
        Err(e) => Err(e).with_context(|| cannot_rename(dst)),
    }
}

/// A file renamed only where nothing is; a hard link does the same where
/// the file system has no `RENAME_NOREPLACE` (the original then stays in
/// the temporary directory, removed with it).
fn rename_noreplace(new: &Path, dst: &Path) -> io::Result<()> {
    match renameat_with(CWD, new, CWD, dst, RenameFlags::NOREPLACE) {
        Err(e) if unsupported(e) => std::fs::hard_link(new, dst),
        r => r.map_err(io::Error::from),
    }
}

fn replace(new: &Path, dst: &Path, aside: &Path) -> Result<()> {
    // Concurrent --force runs may remove and create `dst` between two of
    // our calls; each retry follows a change made by someone else.
    for _ in 0..8 {
        match renameat_with(CWD, new, CWD, dst, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(()),
            // `dst` is absent: a plain rename, unless it appeared meanwhile.
            Err(Errno::NOENT) if new.symlink_metadata().is_ok() => {
                match std::fs::rename(new, dst) {
                    Ok(()) => return Ok(()),
                    Err(e) if occupied(&e) => continue,
                    Err(e) => return Err(e).with_context(|| cannot_rename(dst)),
                }
            }
            Err(e) if unsupported(e) => return replace_in_two_steps(new, dst, aside),
            Err(e) => return Err(io::Error::from(e)).with_context(|| cannot_rename(dst)),
        }
    }
    Err(anyhow!(
        "{} kept changing while it was being replaced",
        dst.display()
    ))
}

/// Without `RENAME_EXCHANGE`: one rename(2) where it replaces `dst` in one
/// step (`dst` absent, a file over a file or symlink, a directory over an
/// empty one); otherwise `dst` is moved aside first.
fn replace_in_two_steps(new: &Path, dst: &Path, aside: &Path) -> Result<()> {
    match std::fs::rename(new, dst) {
        Ok(()) => return Ok(()),
        Err(e) if occupied(&e) => {}
        Err(e) => return Err(e).with_context(|| cannot_rename(dst)),
    }
    // Between the two renames `dst` holds neither image; `place` holds the
    // signal handler off, so it then finds the replaced destination at
    // `aside` (or, on failure, the new output at `new`), inside the
    // temporary directory it removes.
    {
        std::fs::rename(dst, aside)
            .with_context(|| format!("cannot move the existing {} aside", dst.display()))?;
        if let Err(e) = std::fs::rename(new, dst) {
            // Putting it back fails only if `dst` was taken meanwhile (a
            // concurrent run's image): DST then still holds a whole image.
            let restored = std::fs::rename(aside, dst);
            let e = Err::<(), _>(e).with_context(|| cannot_rename(dst));
            return match restored {
                Ok(()) => e,
                Err(r) => e.with_context(|| {
                    format!(
                        "and cannot move the previous {} back from {}: {r}",
                        dst.display(),
                        aside.display()
                    )
                }),
            };
        }
        Ok(())
    }
}

/// What rename(2) says when the destination is in the way.
fn occupied(e: &io::Error) -> bool {
    [Errno::EXIST, Errno::NOTEMPTY, Errno::NOTDIR, Errno::ISDIR]
        .iter()
        .any(|errno| e.raw_os_error() == Some(errno.raw_os_error()))
}

/// `renameat2` flags a file system or kernel does not know.
fn unsupported(e: Errno) -> bool {
    matches!(e, Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP)
}

fn cannot_rename(dst: &Path) -> String {
    format!("cannot rename the output into place at {}", dst.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    struct Dirs {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        temp: PathBuf,
    }

    /// A destination directory `root` and the temporary `root/t`.
    fn dirs() -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let temp = root.join("t");
        std::fs::create_dir(&temp).unwrap();
        Dirs {
            _tmp: tmp,
            root,
            temp,
        }
    }

    fn image_dir(path: &Path, marker: &str) {
        std::fs::create_dir(path).unwrap();
        std::fs::write(path.join("index.json"), marker).unwrap();
    }

    fn marker(path: &Path) -> String {
        let file = if path.is_dir() {
            path.join("index.json")
        } else {
            path.to_path_buf()
        };
        std::fs::read_to_string(file).unwrap()
    }

    #[test]
    fn without_force_only_an_absent_or_empty_destination_is_taken() {
        let d = dirs();
        let (new, aside) = (d.temp.join("image"), d.temp.join("old"));
        let dst = d.root.join("dst");
        image_dir(&new, "new");
        place(&new, &dst, &aside, false).unwrap();
        assert_eq!(marker(&dst), "new");
        assert!(!new.exists());

        // A concurrent run's finished image is never replaced.
        image_dir(&new, "second");
        let err = place(&new, &dst, &aside, false).unwrap_err().to_string();
        assert!(err.contains(&dst.display().to_string()), "{err}");
        assert!(
            err.contains("appeared or was filled while converting"),
            "{err}"
        );
        assert_eq!(marker(&dst), "new");
        assert_eq!(marker(&new), "second");

        // An empty directory is taken; a file in the way is not.
        let empty = d.root.join("empty");
        std::fs::create_dir(&empty).unwrap();
        place(&new, &empty, &aside, false).unwrap();
        assert_eq!(marker(&empty), "second");

        let (file_new, file_dst) = (d.temp.join("image.tar"), d.root.join("out.tar"));
        std::fs::write(&file_new, "tar one").unwrap();
        place(&file_new, &file_dst, &aside, false).unwrap();
        std::fs::write(&file_new, "tar two").unwrap();
        assert!(place(&file_new, &file_dst, &aside, false).is_err());
        assert_eq!(marker(&file_dst), "tar one");
        // A file never goes where an (empty) directory is, nor the reverse.
        assert!(place(&file_new, &d.root.join("empty"), &aside, false).is_err());
        image_dir(&d.temp.join("dir"), "dir");
        assert!(place(&d.temp.join("dir"), &file_dst, &aside, false).is_err());
        assert_eq!(marker(&file_dst), "tar one");
        assert!(!aside.exists());
    }

    #[test]
    fn with_force_the_replaced_destination_ends_up_in_the_temporary_directory() {
        let d = dirs();
        let aside = d.temp.join("old");
        let dst = d.root.join("dst");
        // Every pair of kinds: directory or file, new and old.
        for (new_is_dir, old_is_dir) in [(true, true), (true, false), (false, true), (false, false)]
        {
            let new = d.temp.join("image");
            if new_is_dir {
                image_dir(&new, "new");
            } else {
                std::fs::write(&new, "new").unwrap();
            }
            if old_is_dir {
                image_dir(&dst, "old");
                std::fs::write(dst.join("extra"), "x").unwrap();
            } else {
                std::fs::write(&dst, "old").unwrap();
            }
            place(&new, &dst, &aside, true).unwrap();
            assert_eq!(marker(&dst), "new");
            assert_eq!(dst.is_dir(), new_is_dir);
            // The old one is in the temporary directory, whichever way it
            // was moved, and nowhere else.
            let kept: Vec<_> = [&new, &aside].into_iter().filter(|p| p.exists()).collect();
            assert_eq!(kept.len(), 1, "{kept:?}");
            assert_eq!(marker(kept[0]), "old");
            for p in [&new, &aside, &dst] {
                let _ = std::fs::remove_file(p);
                let _ = std::fs::remove_dir_all(p);
            }
        }
        // An absent destination is simply created.
        std::fs::write(d.temp.join("image"), "new").unwrap();
        place(&d.temp.join("image"), &dst, &aside, true).unwrap();
        assert_eq!(marker(&dst), "new");
        let mut left: Vec<_> = std::fs::read_dir(&d.temp).unwrap().collect();
        assert!(left.pop().is_none());
    }

    #[test]
    fn without_exchange_the_replaced_destination_is_moved_aside() {
        let d = dirs();
        let (new, aside) = (d.temp.join("image"), d.temp.join("old"));
        let dst = d.root.join("dst");
        image_dir(&new, "new");
        image_dir(&dst, "old");
        replace_in_two_steps(&new, &dst, &aside).unwrap();
        assert_eq!(marker(&dst), "new");
        assert_eq!(marker(&aside), "old");

        // Where one rename(2) replaces it, nothing is moved aside.
        std::fs::remove_dir_all(&aside).unwrap();
        std::fs::write(&new, "file").unwrap();
        std::fs::remove_dir_all(&dst).unwrap();
        std::fs::write(&dst, "old file").unwrap();
        replace_in_two_steps(&new, &dst, &aside).unwrap();
        assert_eq!(marker(&dst), "file");
        assert!(!aside.exists() && !new.exists());
    }
}
