//! `convert` reads a regular-file input through a read-only memory map, so
//! the converter compresses and hashes file data in place (zero copy; see
//! `estargz_core::InputBytes`). `--no-mmap` reads it as a stream.
//!
//! Mapping a file is `unsafe` in Rust because another process may change
//! the file while it is mapped. What that can do here, and what is done
//! about it:
//! - the file is changed in place: the blob may mix old and new bytes, so
//!   its size, modification time and change time are compared before and
//!   after the conversion, and a difference is an error (the output is then
//!   never committed);
//! - the file is truncated: reading past its new end raises SIGBUS. A
//!   handler removes the temporary outputs, says what happened and exits
//!   with 1; a SIGBUS outside the mapping keeps the default action.
//!
//! Both need someone to rewrite the layer while it is being converted;
//! a stream read would give a torn tar then too. The handler knows one
//! address range, so a process holds at most one map at a time: a second
//! [`MappedTar::open`] while one is alive fails with [`AlreadyMapped`].
//!
//! This module is the CLI's only `unsafe` code; elsewhere in the workspace
//! there is the call into `sha256-lanes`' SHA-NI kernel and `gzip-member`'s
//! FFI calls into libdeflate (see SECURITY.md).
#![allow(unsafe_code)]

use crate::input::Watch;
use anyhow::{Context, Result};
use estargz_core::InputBytes;
use indicatif::ProgressBar;
use memmap2::{Advice, Mmap, UncheckedAdvice};
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Pages are given back in steps of this many bytes: a `madvise` call per
/// member would cost more than the pages are worth on a layer of small files.
const RELEASE_STEP: usize = 8 << 20;
/// Every Linux page size divides 64 KiB, so its multiples are page-aligned.
const RELEASE_ALIGN: usize = 64 << 10;

/// A tar file mapped read-only.
pub struct MappedTar {
    map: Mmap,
    /// The file, to tell whether it changed (see the module docs).
    watch: Watch,
    /// Bytes before this offset have been given back.
    released: AtomicUsize,
    /// Serialises `release` calls (they come from one thread, but the trait allows any).
    releasing: Mutex<()>,
    bar: Option<ProgressBar>,
    /// Declared after `map`: the claim is given up once the map is gone.
    _claim: MapClaim,
}

/// A second map was asked for while one is alive: the SIGBUS handler
/// knows one address range, and a second map would take it over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlreadyMapped;

impl std::fmt::Display for AlreadyMapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an input is already memory-mapped in this process (one map at a time)")
    }
}

impl std::error::Error for AlreadyMapped {}

/// Whether a [`MappedTar`] is alive in this process.
static MAP_CLAIMED: AtomicBool = AtomicBool::new(false);

/// The one map's right to the SIGBUS range; given back on drop.
struct MapClaim(());

impl MapClaim {
    fn take() -> Result<MapClaim, AlreadyMapped> {
        MAP_CLAIMED
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| MapClaim(()))
            .map_err(|_| AlreadyMapped)
    }
}

impl Drop for MapClaim {
    fn drop(&mut self) {
        MAP_CLAIMED.store(false, Ordering::Release);
    }
}

impl MappedTar {
    /// Maps `path` when it is a non-empty regular file; `None` otherwise
    /// (stdin, pipes, devices, empty files), for the caller to stream.
    pub fn open(path: &str, bar: Option<ProgressBar>) -> Result<Option<MappedTar>> {
        if path == "-" {
            return Ok(None);
        }
        let file = File::open(path).with_context(|| format!("cannot open {path}"))?;
        let meta = file
            .metadata()
            .with_context(|| format!("cannot stat {path}"))?;
        if !meta.is_file() || meta.len() == 0 {
            return Ok(None);
        }
        let claim = MapClaim::take()?;
        static HANDLER: OnceLock<Result<(), i32>> = OnceLock::new();
        HANDLER
            .get_or_init(install_sigbus_handler)
            .map_err(std::io::Error::from_raw_os_error)
            .context("cannot install the SIGBUS handler that guards the input mapping")?;
        // SAFETY: the map is read-only (a shared file mapping, never written
        // through); what a concurrent writer of the file can do is described
        // in the module docs and checked by `check_unchanged`.
        let map = unsafe { Mmap::map(&file) }.with_context(|| format!("cannot map {path}"))?;
        // Read ahead aggressively; a failure only loses the hint.
        let _ = map.advise(Advice::Sequential);
        MAP_START.store(map.as_ptr() as usize, Ordering::Release);
        MAP_LEN.store(map.len(), Ordering::Release);
        Ok(Some(MappedTar {
            map,
            watch: Watch::new(file, path, &meta),
            released: AtomicUsize::new(0),
            releasing: Mutex::new(()),
            bar,
            _claim: claim,
        }))
    }

    /// Fails when the file changed since it was mapped.
    pub fn check_unchanged(&self) -> Result<()> {
        self.watch.check_unchanged()
    }
}

impl Drop for MappedTar {
    fn drop(&mut self) {
        // Unmapped next: a SIGBUS at these addresses is no longer ours.
        MAP_LEN.store(0, Ordering::Release);
    }
}

/// The mapping's address range, for the SIGBUS handler (one map per
/// process, see [`MapClaim`]).
static MAP_START: AtomicUsize = AtomicUsize::new(0);
static MAP_LEN: AtomicUsize = AtomicUsize::new(0);

const TRUNCATED: &[u8] = b"estargz: error: the input file was truncated while it was being \
converted (SIGBUS reading it); the conversion stopped and its output files were removed. \
--no-mmap reads the input as a stream\n";

/// Installs [`on_sigbus`]; the error is the errno of the failed call.
fn install_sigbus_handler() -> Result<(), i32> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value;
    // the handler below only calls async-signal-safe functions.
    let status = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        if libc::sigemptyset(&mut action.sa_mask) == 0 {
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut())
        } else {
            -1
        }
    };
    if status == 0 {
        Ok(())
    } else {
        // Without the handler a truncated input would kill the process
        // and leave its temporary outputs behind: not mapped then.
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL))
    }
}

/// SIGBUS: if the fault is inside the input mapping, the file shrank under
/// it. Nothing here locks or allocates: the temporary outputs are unlinked
/// through the C strings `output` prepared, the message is one write(2),
/// and the process ends with `_exit(1)`. Outside the mapping, the default
/// action is restored and the faulting access repeats into it.
extern "C" fn on_sigbus(
    _signal: libc::c_int,
    info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    // SAFETY: `info` is the kernel's siginfo for this SIGBUS (SA_SIGINFO).
    let addr = unsafe { (*info).si_addr() } as usize;
    let start = MAP_START.load(Ordering::Acquire);
    let len = MAP_LEN.load(Ordering::Acquire);
    if addr < start || addr - start >= len {
        // SAFETY: restoring the default disposition is async-signal-safe.
        unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
        return;
    }
    for slot in &crate::output::IN_PROGRESS_RAW {
        let path = slot.load(Ordering::Acquire);
        if !path.is_null() {
            // SAFETY: a leaked, NUL-terminated CString (see `output`).
            unsafe { libc::unlink(path) };
        }
    }
    // SAFETY: write(2) and _exit(2) are async-signal-safe.
    unsafe {
        libc::write(2, TRUNCATED.as_ptr().cast(), TRUNCATED.len());
        libc::_exit(1);
    }
}

impl InputBytes for MappedTar {
    fn bytes(&self) -> &[u8] {
        &self.map
    }

    fn release(&self, end: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(end as u64);
        }
        let Ok(_guard) = self.releasing.lock() else {
            return;
        };
        let from = self.released.load(Ordering::Relaxed);
        // Whole pages only: the page holding `end` may still be read.
        let to = end - end % RELEASE_ALIGN;
        if to < from + RELEASE_STEP {
            return;
        }
        // SAFETY: DONTNEED on a shared read-only file mapping drops this
        // process's page-table entries; a later access would fault the same
        // file bytes back in from the page cache, nothing is zeroed. And
        // nothing reads them again: `release` promises every byte before
        // `end` is compressed and hashed.
        let dropped = unsafe {
            self.map
                .unchecked_advise_range(UncheckedAdvice::DontNeed, from, to - from)
        };
        if dropped.is_ok() {
            self.released.store(to, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    /// Tests that map run one at a time: a process holds one map.
    static ONE_MAP: Mutex<()> = Mutex::new(());

    #[test]
    fn a_file_changed_after_mapping_is_an_error() {
        let _one = ONE_MAP.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layer.tar");
        let len = RELEASE_STEP + 3 * RELEASE_ALIGN + 1;
        std::fs::write(&path, vec![7u8; len]).unwrap();
        let name = path.to_str().unwrap();
        let mapped = MappedTar::open(name, None)
            .unwrap()
            .expect("a regular file is mapped");
        assert_eq!(mapped.bytes().len(), len);
        mapped.check_unchanged().unwrap();
        // Pages given back read back the same bytes.
        mapped.release(len - 1);
        assert_eq!(
            mapped.released.load(Ordering::Relaxed),
            RELEASE_STEP + 3 * RELEASE_ALIGN
        );
        assert!(mapped.bytes().iter().all(|&b| b == 7));

        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        let err = mapped.check_unchanged().unwrap_err();
        assert!(err.to_string().contains("changed while"), "{err}");
    }

    #[test]
    fn a_second_map_waits_for_the_first_to_be_dropped() {
        let _one = ONE_MAP.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layer.tar");
        std::fs::write(&path, [1u8; 4096]).unwrap();
        let name = path.to_str().unwrap();
        let first = MappedTar::open(name, None).unwrap().expect("mapped");
        let err = MappedTar::open(name, None)
            .err()
            .expect("a second map fails");
        assert_eq!(err.downcast_ref::<AlreadyMapped>(), Some(&AlreadyMapped));
        // The first map's SIGBUS range is untouched.
        assert_eq!(
            MAP_START.load(Ordering::Acquire),
            first.map.as_ptr() as usize
        );
        assert_eq!(MAP_LEN.load(Ordering::Acquire), 4096);
        // Inputs that are streamed never claim the map.
        assert!(MappedTar::open("-", None).unwrap().is_none());
        drop(first);
        assert_eq!(MAP_LEN.load(Ordering::Acquire), 0);
        let second = MappedTar::open(name, None).unwrap().expect("mapped again");
        assert_eq!(second.bytes(), &[1u8; 4096][..]);
    }

    #[test]
    fn only_non_empty_regular_files_are_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.tar");
        std::fs::write(&empty, b"").unwrap();
        assert!(MappedTar::open(empty.to_str().unwrap(), None)
            .unwrap()
            .is_none());
        assert!(MappedTar::open("-", None).unwrap().is_none());
        assert!(MappedTar::open("/dev/null", None).unwrap().is_none());
        assert!(MappedTar::open(dir.path().join("absent").to_str().unwrap(), None).is_err());
    }
}
