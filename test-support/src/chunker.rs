//! containers/storage's chunking of one file's data (spec
//! `../shared/docs/zstd-chunked-format.md` §4.3), written from the spec and
//! as a step-by-step copy of the state machine in containers/storage's
//! `pkg/chunked/compressor/compressor.go` (`holesFinder`,
//! `rollingChecksumReader`, the 4,096-byte read loop of
//! `writeZstdChunkedStream`) and `rollsum.go`, not from estargz-core.
//!
//! The one independent check of the writer's chunk boundaries: the library
//! computes them differently (a closed form of the sums from the 64 bytes
//! before each chunk, zero runs found from whole zero blocks), so a mistake
//! in either shows up as a difference.

/// One chunk of a file: where it starts in the file, its length, and
/// whether containers/storage marks it `chunkType: "zeros"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Offset in the file.
    pub offset: u64,
    /// Bytes.
    pub size: u64,
    /// A run of at least 1,024 zero bytes.
    pub zeros: bool,
}

const WINDOW: usize = 64;
const CHAR_OFFSET: u32 = 31;
const ROLLSUM_BITS: u32 = 16;
const HOLES_THRESHOLD: i64 = 1 << 10;

/// bup's rolling sum, as rollsum.go keeps it: a ring of the window.
struct RollSum {
    s1: u32,
    s2: u32,
    window: [u8; WINDOW],
    wofs: usize,
}

impl RollSum {
    fn new() -> Self {
        RollSum {
            s1: WINDOW as u32 * CHAR_OFFSET,
            s2: WINDOW as u32 * (WINDOW as u32 - 1) * CHAR_OFFSET,
            window: [0; WINDOW],
            wofs: 0,
        }
    }

    fn roll(&mut self, ch: u8) {
        let drop = u32::from(self.window[self.wofs]);
        let s1 = self.s1.wrapping_add(u32::from(ch)).wrapping_sub(drop);
        self.s1 = s1;
        self.s2 = self
            .s2
            .wrapping_add(s1)
            .wrapping_sub((WINDOW as u32).wrapping_mul(drop + CHAR_OFFSET));
        self.window[self.wofs] = ch;
        self.wofs = (self.wofs + 1) & (WINDOW - 1);
    }

    fn on_split(&self) -> bool {
        let mask = (1u32 << ROLLSUM_BITS) - 1;
        self.s2 & mask == mask
    }
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Read,
    Accumulate,
    Found,
    Eof,
}

/// `holesFinder`: bytes one at a time, runs of at least the threshold of
/// zeros as one hole length.
struct HolesFinder<'a> {
    data: &'a [u8],
    pos: usize,
    zeros: i64,
    state: State,
}

impl HolesFinder<'_> {
    fn next(&mut self) -> Option<u8> {
        let b = self.data.get(self.pos).copied();
        if b.is_some() {
            self.pos += 1;
        }
        b
    }

    /// `(hole length, byte)`; `None` at the end.
    fn read_byte(&mut self) -> Option<(i64, u8)> {
        loop {
            match self.state {
                State::Read => {
                    if self.zeros > 0 {
                        self.zeros -= 1;
                        return Some((0, 0));
                    }
                    let b = self.next()?;
                    if b != 0 {
                        return Some((0, b));
                    }
                    self.zeros = 1;
                    self.state = if self.zeros == HOLES_THRESHOLD {
                        State::Found
                    } else {
                        State::Accumulate
                    };
                }
                State::Accumulate => match self.next() {
                    None => self.state = State::Eof,
                    Some(0) => {
                        self.zeros += 1;
                        if self.zeros == HOLES_THRESHOLD {
                            self.state = State::Found;
                        }
                    }
                    Some(_) => {
                        self.pos -= 1;
                        self.state = State::Read;
                    }
                },
                State::Found => match self.next() {
                    None => {
                        self.state = State::Eof;
                        let hole = self.zeros;
                        self.zeros = 0;
                        return Some((hole, 0));
                    }
                    Some(0) => self.zeros += 1,
                    Some(_) => {
                        self.pos -= 1;
                        self.state = State::Read;
                        let hole = self.zeros;
                        self.zeros = 0;
                        return Some((hole, 0));
                    }
                },
                State::Eof => {
                    if self.zeros > 0 {
                        self.zeros -= 1;
                        return Some((0, 0));
                    }
                    return None;
                }
            }
        }
    }
}

/// `rollingChecksumReader`.
struct Rolling<'a> {
    reader: HolesFinder<'a>,
    closed: bool,
    rollsum: RollSum,
    pending_hole: i64,
    written_out: u64,
    is_last_chunk_zeros: bool,
}

impl Rolling<'_> {
    /// `(must split, bytes read, end of file)`.
    fn read(&mut self, len: usize) -> (bool, usize, bool) {
        self.is_last_chunk_zeros = false;
        if self.pending_hole > 0 {
            let n = self.pending_hole.min(len as i64);
            self.pending_hole -= n;
            self.written_out += n as u64;
            self.is_last_chunk_zeros = true;
            return (self.pending_hole == 0, n as usize, false);
        }
        if self.closed {
            return (false, 0, true);
        }
        for i in 0..len {
            let Some((hole, b)) = self.reader.read_byte() else {
                self.closed = true;
                return (false, i, i == 0);
            };
            if hole > 0 {
                for _ in 0..hole {
                    self.rollsum.roll(0);
                }
                self.pending_hole = hole;
                return (true, i, false);
            }
            self.written_out += 1;
            self.rollsum.roll(b);
            if self.rollsum.on_split() {
                return (true, i + 1, false);
            }
        }
        (false, len, false)
    }
}

/// The chunks containers/storage cuts a file of content `data` into (none
/// for an empty file).
pub fn chunks(data: &[u8]) -> Vec<Chunk> {
    let mut rc = Rolling {
        reader: HolesFinder {
            data,
            pos: 0,
            zeros: 0,
            state: State::Read,
        },
        closed: false,
        rollsum: RollSum::new(),
        pending_hole: 0,
        written_out: 0,
        is_last_chunk_zeros: false,
    };
    let mut out = Vec::new();
    let mut started = false;
    let mut last_chunk_offset = 0u64;
    loop {
        let (must_split, read, eof) = rc.read(4096);
        started |= read > 0;
        if (must_split || eof) && started {
            let size = rc.written_out - last_chunk_offset;
            if size > 0 {
                out.push(Chunk {
                    offset: last_chunk_offset,
                    size,
                    zeros: rc.is_last_chunk_zeros,
                });
            }
            last_chunk_offset = rc.written_out;
        }
        if eof {
            return out;
        }
    }
}

/// Every non-empty regular file's chunks as the containers TOC of a
/// zstd:chunked blob lists them, in TOC order: the footer (40- or 64-byte,
/// spec §4.6) gives the TOC frame, whose JSON (§4.4) gives each file's
/// `chunkOffset`, `chunkSize` (the file's `size` for a file of one chunk,
/// which has no chunk fields) and `chunkType`.
pub fn toc_chunks(blob: &[u8]) -> Vec<(String, Vec<Chunk>)> {
    const SKIPPABLE: [u8; 4] = [0x50, 0x2a, 0x4d, 0x18];
    let n = blob.len();
    let payload = if blob.ends_with(b"GNUlInUx") {
        assert_eq!(
            &blob[n - 72..n - 64],
            &[SKIPPABLE, [0x40, 0, 0, 0]].concat()
        );
        n - 64
    } else {
        assert!(blob.ends_with(b"GnUlInUx"), "no zstd:chunked footer");
        assert_eq!(
            &blob[n - 48..n - 40],
            &[SKIPPABLE, [0x28, 0, 0, 0]].concat()
        );
        n - 40
    };
    let u64_at = |at: usize| u64::from_le_bytes(blob[at..at + 8].try_into().unwrap()) as usize;
    let (m, l) = (u64_at(payload), u64_at(payload + 8));
    let json = zstd::decode_all(&blob[m..m + l]).unwrap();
    let toc: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let int = |e: &serde_json::Value, k: &str| e[k].as_u64().unwrap_or(0);
    let mut out: Vec<(String, Vec<Chunk>)> = Vec::new();
    for e in toc["entries"].as_array().into_iter().flatten() {
        let zeros = e["chunkType"].as_str() == Some("zeros");
        match e["type"].as_str() {
            Some("reg") if int(e, "size") > 0 => {
                let size = match int(e, "chunkSize") {
                    0 => int(e, "size"),
                    s => s,
                };
                let name = e["name"].as_str().unwrap().to_string();
                out.push((
                    name,
                    vec![Chunk {
                        offset: 0,
                        size,
                        zeros,
                    }],
                ));
            }
            Some("chunk") => {
                let (name, chunks) = out.last_mut().unwrap();
                assert_eq!(e["name"].as_str(), Some(name.as_str()));
                chunks.push(Chunk {
                    offset: int(e, "chunkOffset"),
                    size: int(e, "chunkSize"),
                    zeros,
                });
            }
            _ => {}
        }
    }
    out
}
