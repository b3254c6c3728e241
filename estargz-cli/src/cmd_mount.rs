//! `estargz mount`: one layer as a read-only FUSE file system, read
//! lazily; this is the adapter that logs, counts and handles signals
//! around `estargz-fuse`.

use crate::cmd_convert::parse_size;
use crate::input::{open_remote_blob_with, BlobArgs};
use crate::UsageError;
use anyhow::{Context, Result};
use estargz_core::{Blob, ChunkCache, Digest, DiskChunkCache, LruChunkCache, ReadAt};
use estargz_fuse::{
    mount, prefetch_region, CountedSource, Event, Fetch, FetchReport, LayerFs, MountOptions,
    Stopped, Whiteouts, BACKGROUND_WINDOW, MAX_WINDOW,
};
use estargz_remote::HttpBlob;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod layers;

/// Mount a layer read-only on DIR with FUSE and serve it until Ctrl-C,
/// SIGTERM or `umount DIR`: names from the TOC, file bytes fetched and
/// decoded on first read, every chunk checked against its TOC digest (a
/// chunk that fails is EIO for that read). SIGUSR1 prints what was read.
/// With --layers, a whole image: every layer mounted so, and a read-only
/// overlayfs over them on DIR.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: BlobArgs,
    /// The mount point: an existing directory.
    dir: PathBuf,
    /// Mount a whole image: BLOB is docker://HOST/REPO:TAG (or @DIGEST)
    /// or oci:DIR (or oci:DIR:REF). Each layer (eStargz or zstd:chunked, checked against
    /// its TOC-digest annotation) is mounted lazily on a hidden mount
    /// point, and a read-only overlayfs over them on DIR applies the
    /// whiteouts. Other layers are refused. Needs root and overlayfs.
    #[arg(long)]
    layers: bool,
    /// With --layers, the image of an index to mount (default: the host's
    /// platform, else linux/amd64).
    #[arg(long, value_name = "OS/ARCH", requires = "layers")]
    platform: Option<String>,
    /// Refuse the layer unless its TOC has this digest (the
    /// containerd.io/snapshot/stargz/toc.digest annotation).
    #[arg(long, value_name = "DIGEST", conflicts_with = "layers")]
    toc_digest: Option<String>,
    /// Bytes of decoded chunks kept in memory.
    #[arg(long, value_name = "BYTES", default_value = "256MiB", value_parser = parse_size)]
    cache_size: u64,
    /// Keep checked chunks in DIR too, named by their digest: kept across
    /// mounts and shared by every layer, image and process using DIR.
    #[arg(long, value_name = "DIR")]
    disk_cache: Option<PathBuf>,
    /// Most bytes of chunks in --disk-cache; those used longest ago go
    /// first.
    #[arg(long, value_name = "BYTES", default_value = "10GiB", value_parser = parse_size, requires = "disk_cache")]
    disk_cache_max: u64,
    /// After the prefetch region, fetch the rest of the layer into the
    /// cache in the background (until the cache, on disk with
    /// --disk-cache, is full).
    #[arg(long)]
    background_fetch: bool,
    /// Do not prefetch the region the layer's landmark marks.
    #[arg(long)]
    no_prefetch: bool,
    /// How whiteouts appear: "overlay" (a character device 0:0 per
    /// .wh.NAME, opaque directories marked with trusted.overlay.opaque=y,
    /// as overlayfs expects of a lower layer) or "stored" (the .wh. files
    /// as the layer holds them).
    #[arg(long, value_enum, default_value_t = WhiteoutArg::Overlay)]
    whiteouts: WhiteoutArg,
    /// Let other users read the mount (FUSE's allow_other).
    #[arg(long)]
    allow_other: bool,
    /// Print every FUSE request and reply on stderr.
    #[arg(short = 'd', long)]
    debug: bool,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum WhiteoutArg {
    Overlay,
    Stored,
}

/// The blob as mounted, and the HTTP client when it is remote (it counts
/// the requests themselves).
struct Served {
    blob: Arc<Blob<CountedSource<Box<dyn ReadAt>>>>,
    http: Option<Arc<HttpBlob>>,
}

/// The chunk cache of a mount, shared by all its layers: in memory, or on
/// disk with a memory cache in front.
#[derive(Clone)]
enum MountCache {
    Memory(Arc<LruChunkCache>),
    Disk(Arc<DiskChunkCache>),
}

impl MountCache {
    fn open(args: &Args) -> Result<MountCache> {
        Ok(match &args.disk_cache {
            None => MountCache::Memory(Arc::new(LruChunkCache::new(args.cache_size))),
            Some(dir) => MountCache::Disk(Arc::new(
                DiskChunkCache::open(dir, args.disk_cache_max, args.cache_size)
                    .context("cannot open the disk cache")?,
            )),
        })
    }

    fn shared(&self) -> Arc<dyn ChunkCache> {
        match self {
            MountCache::Memory(c) => c.clone(),
            MountCache::Disk(c) => c.clone(),
        }
    }

    /// Waits for the disk cache's writes: the process may exit next, and
    /// a fetch thread holding the cache would keep it from being dropped.
    fn flush(&self) {
        if let MountCache::Disk(c) = self {
            c.flush();
        }
    }

    /// What the cache holds, and for a disk cache what it did.
    fn report(&self) -> String {
        let memory = |c: &LruChunkCache| format!("cache {} of {} bytes", c.used(), c.budget());
        match self {
            MountCache::Memory(c) => memory(c),
            MountCache::Disk(c) => {
                let s = c.stats();
                format!(
                    "{}; disk cache {} bytes: {} hits, {} chunks ({} bytes) written, \
                     {} bad entries dropped, {} writes failed",
                    memory(c.memory()),
                    s.used,
                    s.hits,
                    s.writes,
                    s.bytes_written,
                    s.dropped,
                    s.failures
                )
            }
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    if args.layers {
        return layers::run(args);
    }
    let expected = match &args.toc_digest {
        Some(d) => Some(d.parse::<Digest>().map_err(|e| UsageError(e.to_string()))?),
        None => None,
    };
    if !args.dir.is_dir() {
        return Err(UsageError(format!("{} is not a directory", args.dir.display())).into());
    }
    log_to_stderr(args.debug);
    let cache = MountCache::open(&args)?;
    let served = open(&args, expected, &cache)?;
    let whiteouts = match args.whiteouts {
        WhiteoutArg::Overlay => Whiteouts::Overlay,
        WhiteoutArg::Stored => Whiteouts::AsStored,
    };
    let fs = LayerFs::new(served.blob.clone())
        .whiteouts(whiteouts)
        .on_event(log_event);
    let mut opts = MountOptions::default();
    opts.allow_other = args.allow_other;
    opts.fs_name = format!("estargz:{}", args.source.blob);
    let mut mounted = mount(fs, &args.dir, &opts)?;
    let served = Arc::new(served);
    let cancel = Arc::new(AtomicBool::new(false));
    spawn_fetch(&served, &cancel, !args.no_prefetch, args.background_fetch);
    let unmounter = mounted.unmounter();
    let (reported, cached) = (served.clone(), cache.clone());
    spawn_signal_handler(
        signals()?,
        move || format!("{}; {}", report(&reported), cached.report()),
        move |detach| match detach {
            true => unmounter.detach(),
            false => unmounter.unmount(),
        },
    );
    eprintln!(
        "estargz: {} mounted on {} (Ctrl-C to unmount)",
        args.source.blob,
        args.dir.display()
    );
    let served_result = mounted.run();
    cancel.store(true, Ordering::Relaxed);
    cache.flush();
    eprintln!(
        "estargz: unmounted {}: {}; {}",
        args.dir.display(),
        report(&served),
        cache.report()
    );
    Ok(served_result?)
}

fn open(args: &Args, expected: Option<Digest>, cache: &MountCache) -> Result<Served> {
    let mut opts = args.source.toc.open_options()?;
    opts.expected_toc_digest = expected;
    let name = &args.source.blob;
    let (source, http): (Box<dyn ReadAt>, _) =
        match open_remote_blob_with(name, &args.source.remote, mount_http(&args.source.remote)?)? {
            Some(http) => {
                let http = Arc::new(http);
                (Box::new(http.clone()), Some(http))
            }
            None => (args.source.source()?, None),
        };
    let blob = Blob::open(CountedSource::new(source), &opts)
        .with_context(|| format!("opening {name}"))?
        .with_cache(cache.shared());
    Ok(Served {
        blob: Arc::new(blob),
        http,
    })
}

/// HTTP options for serving a mount: a small first read of the blob's end
/// (64 KiB: the footer, and the TOC of a small layer; a larger TOC costs
/// one more request, for exactly its bytes). A mount reads the TOC once and
/// keeps it, so the 512 KiB other commands take to save that request would
/// mostly be payload fetched before anyone asks for it. Measured against
/// the stargz snapshotter in docs/benchmarks.md (a 2 MiB read-ahead cap was
/// tried too: more requests and more bytes than the default 8 MiB).
fn mount_http(remote: &crate::input::RemoteArgs) -> Result<estargz_remote::HttpOptions> {
    let mut http = remote.http_options()?;
    http.tail_size = 64 << 10;
    Ok(http)
}

/// The prefetch region first, in one read; then, if asked, the rest.
fn spawn_fetch(served: &Arc<Served>, cancel: &Arc<AtomicBool>, prefetch: bool, rest: bool) {
    let (served, cancel) = (served.clone(), cancel.clone());
    std::thread::spawn(move || {
        let blob = &served.blob;
        let mut fetch = Fetch {
            window: MAX_WINDOW,
            cancel: &cancel,
        };
        let region = prefetch_region(blob).filter(|_| prefetch);
        if let Some((start, end)) = region {
            let done = fetch.run(blob, start, end);
            eprintln!("estargz: prefetch of [{start}, {end}): {}", fetched(&done));
        }
        if rest {
            fetch.window = BACKGROUND_WINDOW;
            let done = fetch.run(blob, region.map_or(0, |(_, end)| end), blob.payload_end());
            eprintln!("estargz: background fetch: {}", fetched(&done));
        }
    });
}

fn fetched(r: &FetchReport) -> String {
    let how = match &r.stopped {
        None => "done".to_string(),
        Some(Stopped::Cancelled) => "cancelled".to_string(),
        Some(Stopped::CacheFull) => "stopped, the cache is full".to_string(),
        Some(Stopped::Failed(why)) => format!("stopped: {why}"),
        Some(other) => format!("stopped: {other:?}"),
    };
    format!(
        "{how}; {} chunks, {} bytes in {} reads",
        r.chunks, r.bytes, r.reads
    )
}

/// The signals the mount answers, caught from now on (a layer stack
/// registers them before mounting, so a Ctrl-C meanwhile is not lost).
fn signals() -> Result<signal_hook::iterator::Signals> {
    signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGUSR1])
        .context("cannot handle signals")
}

/// SIGUSR1 prints the numbers; SIGINT, SIGTERM and SIGHUP unmount (a
/// second one detaches a mount still in use).
fn spawn_signal_handler(
    mut signals: signal_hook::iterator::Signals,
    report: impl Fn() -> String + Send + 'static,
    unmount: impl Fn(bool) -> io::Result<()> + Send + 'static,
) {
    std::thread::spawn(move || {
        let mut busy = false;
        for signal in signals.forever() {
            if signal == SIGUSR1 {
                eprintln!("estargz: {}", report());
                continue;
            }
            match unmount_retrying(&unmount, busy) {
                Ok(()) => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    busy = true;
                    eprintln!(
                        "estargz: cannot unmount: a process still uses the mount; \
                         signal again to detach it (it goes once the last user leaves)"
                    );
                }
                Err(e) => eprintln!("estargz: cannot unmount: {e}"),
            }
        }
    });
}

/// A mount can be busy for a moment only: a child forked by another
/// thread of the process using it holds the descriptors it inherited until
/// it execs. So `EBUSY` is tried again for about a second before it is
/// reported.
fn unmount_retrying(unmount: &impl Fn(bool) -> io::Result<()>, detach: bool) -> io::Result<()> {
    for _ in 0..20 {
        match unmount(detach) {
            Err(e) if !detach && e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
    unmount(detach)
}

/// The numbers reported on SIGUSR1 and on unmount.
fn report(served: &Served) -> String {
    let s = served.blob.source().counters().stats();
    let http = served.http.as_ref().map_or(String::new(), |h| {
        format!(
            " ({} HTTP requests, {} bytes received)",
            h.requests(),
            h.bytes_received()
        )
    });
    format!(
        "{} source reads, {} bytes{http}; {} file reads, {} bytes, {} failed",
        s.source_reads, s.source_bytes, s.file_reads, s.file_bytes, s.failed_reads,
    )
}

fn log_event(event: Event) {
    match event {
        Event::ReadFailed {
            path,
            offset,
            len,
            error,
        } => eprintln!("estargz: read of {path} ({len} bytes at {offset}) failed, EIO: {error}"),
        other => eprintln!("estargz: {other:?}"),
    }
}

/// FUSE's own messages (every request with `-d`, warnings otherwise) on
/// stderr.
fn log_to_stderr(debug: bool) {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            if self.enabled(record.metadata()) {
                eprintln!("fuse: {}: {}", record.level(), record.args());
            }
        }
        fn flush(&self) {}
    }
    let level = if debug {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Warn
    };
    if log::set_logger(&Stderr).is_ok() {
        log::set_max_level(level);
    }
}
