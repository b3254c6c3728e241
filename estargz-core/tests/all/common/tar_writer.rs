//! A small, independent tar writer for tests: full control over names
//! (`../x`, `/x`), formats and extension headers, which the `tar` crate
//! deliberately refuses to write.

/// Header layouts to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ustar,
    Gnu,
    Pax,
}

pub const FORMATS: [Format; 3] = [Format::Ustar, Format::Pax, Format::Gnu];
pub const PREFIXES: [&str; 4] = ["", "./", "/", "../"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    Hardlink(String),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

#[derive(Debug, Clone)]
pub struct TestEntry {
    pub name: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub uname: String,
    pub gname: String,
    pub mtime: (i64, u32),
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl TestEntry {
    fn new(name: &str, kind: Kind, mode: u32) -> Self {
        TestEntry {
            name: name.to_string(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            uname: String::new(),
            gname: String::new(),
            mtime: (0, 0),
            xattrs: Vec::new(),
        }
    }
    pub fn xattr(mut self, k: &str, v: &[u8]) -> Self {
        self.xattrs.push((k.to_string(), v.to_vec()));
        self
    }
    pub fn owner(mut self, uid: u64, gid: u64) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn names(mut self, u: &str, g: &str) -> Self {
        self.uname = u.into();
        self.gname = g.into();
        self
    }
    pub fn mode(mut self, m: u32) -> Self {
        self.mode = m;
        self
    }
    pub fn mtime(mut self, secs: i64, nanos: u32) -> Self {
        self.mtime = (secs, nanos);
        self
    }
    pub fn data(&self) -> &[u8] {
        match &self.kind {
            Kind::File(d) => d,
            _ => &[],
        }
    }
}

pub fn file(name: &str, data: impl AsRef<[u8]>) -> TestEntry {
    TestEntry::new(name, Kind::File(data.as_ref().to_vec()), 0o644)
}
pub fn dir(name: &str) -> TestEntry {
    let name = if name.ends_with('/') {
        name.to_string()
    } else {
        format!("{name}/")
    };
    TestEntry::new(&name, Kind::Dir, 0o755)
}
pub fn symlink(name: &str, target: &str) -> TestEntry {
    TestEntry::new(name, Kind::Symlink(target.into()), 0o644)
}
pub fn hardlink(name: &str, target: &str) -> TestEntry {
    TestEntry::new(name, Kind::Hardlink(target.into()), 0o644)
}
pub fn chardev(name: &str, major: u32, minor: u32) -> TestEntry {
    TestEntry::new(name, Kind::Char(major, minor), 0o644)
}
pub fn blockdev(name: &str, major: u32, minor: u32) -> TestEntry {
    TestEntry::new(name, Kind::Block(major, minor), 0o644)
}
pub fn fifo(name: &str) -> TestEntry {
    TestEntry::new(name, Kind::Fifo, 0o644)
}

/// `entries` with `prefix` in front of every name (and hardlink target).
pub fn prefixed(entries: &[TestEntry], prefix: &str) -> Vec<TestEntry> {
    entries
        .iter()
        .cloned()
        .map(|mut e| {
            e.name = format!("{prefix}{}", e.name);
            if let Kind::Hardlink(t) = &e.kind {
                e.kind = Kind::Hardlink(format!("{prefix}{t}"));
            }
            e
        })
        .collect()
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}", v, width = field.len() - 1);
    assert!(s.len() < field.len(), "{v} does not fit");
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[s.len()] = 0;
}

fn checksum(h: &mut [u8; 512]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
}

fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(512) {
        out.push(0);
    }
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body_len = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body_len + 1;
    while format!("{len}").len() + body_len != len {
        len = format!("{len}").len() + body_len;
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    assert_eq!(r.len(), len);
    r
}

fn base_header(format: Format, name: &[u8], typeflag: u8, size: u64, e: &TestEntry) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], u64::from(e.mode));
    octal(&mut h[108..116], e.uid.min(0o7777777));
    octal(&mut h[116..124], e.gid.min(0o7777777));
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], e.mtime.0.max(0) as u64);
    h[156] = typeflag;
    match format {
        Format::Gnu => h[257..265].copy_from_slice(b"ustar  \0"),
        Format::Ustar | Format::Pax => h[257..265].copy_from_slice(b"ustar\x0000"),
    }
    let u = e.uname.as_bytes();
    h[265..265 + u.len().min(32)].copy_from_slice(&u[..u.len().min(32)]);
    let g = e.gname.as_bytes();
    h[297..297 + g.len().min(32)].copy_from_slice(&g[..g.len().min(32)]);
    if let Kind::Char(ma, mi) | Kind::Block(ma, mi) = e.kind {
        octal(&mut h[329..337], u64::from(ma));
        octal(&mut h[337..345], u64::from(mi));
    }
    h
}

/// Writes `entries` in `format`, then the end-of-archive and `trailing` zero bytes.
pub fn build_tar(format: Format, entries: &[TestEntry], trailing: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let (typeflag, link, size) = match &e.kind {
            Kind::File(d) => (b'0', "", d.len() as u64),
            Kind::Dir => (b'5', "", 0),
            Kind::Symlink(t) => (b'2', t.as_str(), 0),
            Kind::Hardlink(t) => (b'1', t.as_str(), 0),
            Kind::Char(..) => (b'3', "", 0),
            Kind::Block(..) => (b'4', "", 0),
            Kind::Fifo => (b'6', "", 0),
        };
        let mut name = e.name.as_bytes().to_vec();
        let mut records = Vec::new();
        let needs_pax = format == Format::Pax;
        if needs_pax || !e.xattrs.is_empty() {
            // Like Go, xattrs force a PAX header whatever the base format.
            if name.len() > 100 || needs_pax {
                records.extend(pax_record("path", &name));
            }
            if link.len() > 100 {
                records.extend(pax_record("linkpath", link.as_bytes()));
            }
            if e.mtime.1 != 0 {
                let frac = format!("{:09}", e.mtime.1);
                records.extend(pax_record(
                    "mtime",
                    format!("{}.{}", e.mtime.0, frac.trim_end_matches('0')).as_bytes(),
                ));
            }
            for (k, v) in &e.xattrs {
                records.extend(pax_record(&format!("SCHILY.xattr.{k}"), v));
            }
        }
        if format == Format::Gnu && name.len() > 100 {
            let mut long = name.clone();
            long.push(0);
            let h = {
                let mut h = base_header(format, b"././@LongLink", b'L', long.len() as u64, e);
                checksum(&mut h);
                h
            };
            out.extend_from_slice(&h);
            out.extend_from_slice(&long);
            pad(&mut out);
        }
        if format == Format::Gnu && link.len() > 100 {
            let mut long = link.as_bytes().to_vec();
            long.push(0);
            let mut h = base_header(format, b"././@LongLink", b'K', long.len() as u64, e);
            checksum(&mut h);
            out.extend_from_slice(&h);
            out.extend_from_slice(&long);
            pad(&mut out);
        }
        if !records.is_empty() {
            let mut h = base_header(Format::Pax, b"PaxHeaders/x", b'x', records.len() as u64, e);
            checksum(&mut h);
            out.extend_from_slice(&h);
            out.extend_from_slice(&records);
            pad(&mut out);
        }
        let mut prefix: &[u8] = &[];
        if format == Format::Ustar && name.len() > 100 {
            let split = name[..name.len() - 1]
                .iter()
                .rposition(|&b| b == b'/')
                .filter(|&i| i <= 155 && name.len() - i - 1 <= 100)
                .expect("ustar cannot hold this name");
            prefix = &e.name.as_bytes()[..split];
            name = e.name.as_bytes()[split + 1..].to_vec();
        }
        let mut h = base_header(format, &name, typeflag, size, e);
        let l = link.as_bytes();
        h[157..157 + l.len().min(100)].copy_from_slice(&l[..l.len().min(100)]);
        h[345..345 + prefix.len()].copy_from_slice(prefix);
        checksum(&mut h);
        out.extend_from_slice(&h);
        out.extend_from_slice(e.data());
        pad(&mut out);
    }
    out.extend(std::iter::repeat_n(0u8, 1024 + trailing));
    out
}
