#!/usr/bin/env python3
"""Python half of testdata/make-fixtures.sh.

Sub-commands (all output is deterministic):

  bytes KIND SIZE PATH     write SIZE bytes of deterministic content
                           (KIND: text | binary | repeat)
  python OUTDIR            tar fixtures written by Python's tarfile module
  derive OUTDIR BASE.tar   trailing-data / no-EOA / EOA-only / multi-member
                           fixtures derived from a small valid tar
  invalid OUTDIR           malformed fixtures (byte-patched valid tars)
  normalize-gnu-times TAR  set the atime/ctime fields of GNU headers to
                           SOURCE_DATE_EPOCH (GNU incremental dumps)
  readme OUTDIR            write OUTDIR/README.md (fixture table)
  check-valid FILE...      read every member (and its data) with tarfile

Only the standard library is used.
"""

import gzip
import hashlib
import io
import os
import sys
import tarfile

EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "1600000000"))
BLOCK = 512


# ---------------------------------------------------------------------------
# deterministic content


def det_bytes(kind, size, seed=b"estargz-fixtures"):
    if kind == "binary":
        out = bytearray()
        counter = 0
        while len(out) < size:
            out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
            counter += 1
        return bytes(out[:size])
    if kind == "text":
        out = bytearray()
        n = 0
        while len(out) < size:
            out += b"line %05d: the quick brown fox jumps over the lazy dog %s\n" % (
                n,
                hashlib.sha1(b"%d" % n).hexdigest()[:12].encode(),
            )
            n += 1
        return bytes(out[:size])
    if kind == "repeat":
        line = b"eStargz exact-size fixture: all work and no play makes a dull tar.\n"
        return (line * (size // len(line) + 1))[:size]
    raise SystemExit("unknown kind %r" % kind)


def cmd_bytes(kind, size, path):
    with open(path, "wb") as f:
        f.write(det_bytes(kind, int(size)))


# ---------------------------------------------------------------------------
# helpers for building archives with tarfile


def entry(name, kind="file", data=b"", mode=None, uid=0, gid=0, uname="root",
          gname="root", mtime=EPOCH, linkname="", dev=(0, 0), pax=None):
    ti = tarfile.TarInfo(name)
    ti.uid, ti.gid, ti.uname, ti.gname, ti.mtime = uid, gid, uname, gname, mtime
    types = {
        "file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE,
        "blk": tarfile.BLKTYPE,
    }
    ti.type = types[kind]
    if mode is None:
        mode = {"dir": 0o755, "symlink": 0o777}.get(kind, 0o644)
    ti.mode = mode
    ti.linkname = linkname
    ti.devmajor, ti.devminor = dev
    if pax:
        ti.pax_headers = dict(pax)
    if kind == "file":
        ti.size = len(data)
        return ti, data
    return ti, None


def write_tar(path, entries, fmt, pax_headers=None, encoding="utf-8"):
    buf = io.BytesIO()
    kw = {}
    if pax_headers:
        kw["pax_headers"] = pax_headers
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding=encoding,
                      errors="surrogateescape", **kw) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    if path:
        with open(path, "wb") as f:
            f.write(raw)
    return raw


def gzip_bytes(raw, level=9):
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=level, mtime=0, filename="") as g:
        g.write(raw)
    return out.getvalue()


def eoa_offset(raw):
    """Offset just after the last entry's (padded) data: where the EOA starts."""
    tf = tarfile.open(fileobj=io.BytesIO(raw), mode="r:")
    end = 0
    for m in tf.getmembers():
        size = m.size if m.isreg() else 0
        end = m.offset_data + ((size + BLOCK - 1) // BLOCK) * BLOCK
    return end


def chksum(block):
    b = bytearray(block)
    b[148:156] = b" " * 8
    return sum(b)


def fix_checksum(raw, off):
    b = bytearray(raw)
    b[off + 148:off + 156] = b"%06o\0 " % chksum(b[off:off + BLOCK])
    return bytes(b)


def header_offsets(raw):
    """Offsets of all header blocks (including x/g/L/K pseudo headers)."""
    offs, off = [], 0
    while off + BLOCK <= len(raw):
        blk = raw[off:off + BLOCK]
        if blk == b"\0" * BLOCK:
            break
        offs.append(off)
        size = int(blk[124:136].rstrip(b"\0 ") or b"0", 8)
        if blk[156:157] in (b"1", b"2", b"3", b"4", b"5", b"6"):
            size = 0
        off += BLOCK + ((size + BLOCK - 1) // BLOCK) * BLOCK
    return offs


# ---------------------------------------------------------------------------
# valid fixtures written by tarfile

TEXT_3K = det_bytes("text", 3000)
LONG_DIR = "pydir/" + "d" * 80
LONG_USTAR = LONG_DIR + "/" + "f" * 80 + ".txt"            # 171 chars, prefix split
LONG_300 = "pydir/" + "/".join(["p" * 60] * 4) + "/" + "q" * 50 + ".txt"  # > 255


def common_entries():
    return [
        entry("pydir/", "dir"),
        entry("pydir/empty", data=b""),
        entry("pydir/one-byte", data=b"A"),
        entry("pydir/text.txt", data=TEXT_3K),
        entry("pydir/symlink", "symlink", linkname="text.txt"),
        entry("pydir/hardlink", "hardlink", linkname="pydir/text.txt"),
        entry("pydir/fifo", "fifo", mode=0o644),
        entry("pydir/char", "chr", mode=0o666, dev=(1, 3)),
        entry("pydir/block", "blk", mode=0o660, dev=(7, 0)),
        entry("pydir/utf8-名前-ñ-😀.txt", data="héllo wörld\n".encode()),
        entry("pydir/setuid", data=b"#!/bin/sh\n", mode=0o4755),
        entry("pydir/setgid", data=b"#!/bin/sh\n", mode=0o2755),
        entry("pydir/sticky/", "dir", mode=0o1777),
        entry("pydir/owned", data=b"owned by alice\n", uid=1000, gid=1000,
              uname="alice", gname="staff"),
        entry(LONG_DIR + "/", "dir"),
        entry(LONG_USTAR, data=b"long ustar name (prefix+name split)\n"),
    ]


def gnu_pax_extra():
    return [
        entry("pydir/" + "n" * 150, data=b"basename longer than 100 bytes\n"),
        entry(LONG_300, data=b"path longer than 255 bytes\n"),
        entry("pydir/long-target", "symlink", linkname="../" + "t" * 120),
        entry("pydir/long-hardlink", "hardlink", linkname="pydir/" + "n" * 150),
        entry("pydir/big-id", data=b"uid/gid 3000000\n", uid=3000000, gid=3000000,
              uname="biguser", gname="biggroup"),
        entry("pydir/old-mtime", data=b"mtime before 1970\n", mtime=-86400),
    ]


def cmd_python(outdir):
    j = lambda n: os.path.join(outdir, n)
    write_tar(j("python-ustar.tar"), common_entries(), tarfile.USTAR_FORMAT)
    write_tar(j("python-gnu.tar"), common_entries() + gnu_pax_extra(), tarfile.GNU_FORMAT)
    write_tar(j("python-pax.tar"), common_entries() + gnu_pax_extra() + [
        entry("pydir/non-ascii-owner", data=b"uname/gname need PAX records\n",
              uid=1001, gid=1001, uname="ñandú", gname="grüppe"),
    ], tarfile.PAX_FORMAT)

    # PAX global header ('g') in front of ordinary entries.
    write_tar(j("python-pax-global.tar"), [
        entry("global/", "dir"),
        entry("global/a.txt", data=b"a\n"),
        entry("global/" + "l" * 120, data=b"long name after a global header\n"),
    ], tarfile.PAX_FORMAT, pax_headers={
        "comment": "global extended header written by python tarfile",
        "ESTARGZTEST.global": "1",
    })

    # PAX mtime records with fractional seconds.
    write_tar(j("python-pax-mtime-fraction.tar"), [
        entry("frac/", "dir", mtime=1577934245.6),
        entry("frac/a.txt", data=b"mtime=1577934245.6\n", mtime=1577934245.6),
        entry("frac/b.txt", data=b"mtime=1577934245.25\n", mtime=1577934245.25),
        entry("frac/c.txt", data=b"mtime=-1.5\n", mtime=-1.5),
    ], tarfile.PAX_FORMAT)

    # Names that are not valid UTF-8 (raw bytes via surrogateescape), GNU format.
    bad = b"bad\xff\xfename".decode("utf-8", "surrogateescape")
    longbad = ("nonutf8/" + "x" * 100 + "\udcff\udcfe" + "y" * 20)
    write_tar(j("python-gnu-nonutf8-name.tar"), [
        entry("nonutf8/", "dir"),
        entry(bad, data=b"name is b'bad\\xff\\xfename'\n"),
        entry("nonutf8/latin1-" + b"caf\xe9".decode("utf-8", "surrogateescape"),
              data=b"latin-1 encoded name\n"),
        entry(longbad, data=b"long non-UTF-8 name in a GNU 'L' record\n"),
        entry("nonutf8/link", "symlink", linkname="../" + bad),
    ], tarfile.GNU_FORMAT)

    # xattrs as SCHILY.xattr.* PAX records (like GNU tar --xattrs / bsdtar).
    write_tar(j("python-pax-xattrs.tar"), [
        entry("xattrs/", "dir", pax={"SCHILY.xattr.user.dir": "on a directory"}),
        entry("xattrs/foo.txt", data=b"has user.foo=bar\n",
              pax={"SCHILY.xattr.user.foo": "bar"}),
        entry("xattrs/multi.txt", data=b"several xattrs\n", pax={
            "SCHILY.xattr.user.a": "1",
            "SCHILY.xattr.user.b": "two",
            "SCHILY.xattr.user.empty": "",
            "SCHILY.xattr.trusted.overlay.opaque": "y",
        }),
        entry("xattrs/bin.txt", data=b"binary xattr value\n", pax={
            # non-UTF-8 value -> tarfile adds hdrcharset=BINARY
            "SCHILY.xattr.user.bin": b"\x00\xff\x01\xfe".decode("utf-8", "surrogateescape"),
        }),
    ], tarfile.PAX_FORMAT)

    # OCI/overlay whiteouts.
    write_tar(j("python-whiteouts.tar"), [
        entry("etc/", "dir"),
        entry("etc/.wh.removed.conf", data=b""),
        entry("etc/kept.conf", data=b"kept=1\n"),
        entry("var/", "dir"),
        entry("var/cache/", "dir"),
        entry("var/cache/.wh..wh..opq", data=b""),
        entry("var/cache/new", data=b"new\n"),
    ], tarfile.PAX_FORMAT)

    # Same path several times with different types/content.
    write_tar(j("python-duplicate-types.tar"), [
        entry("dup/", "dir"),
        entry("dup/x", data=b"first: regular file\n"),
        entry("dup/x", "symlink", linkname="target"),
        entry("dup/x", data=b"third: regular file again\n"),
        entry("dup/", "dir", mode=0o700),
    ], tarfile.USTAR_FORMAT)


# ---------------------------------------------------------------------------
# fixtures derived from a small valid tar


def cmd_derive(outdir, base):
    raw = open(base, "rb").read()
    j = lambda n: os.path.join(outdir, n)
    end = eoa_offset(raw)
    exact = raw[:end] + b"\0" * 1024          # entries + exactly two zero blocks
    open(j("trailing-zeros-100.tar"), "wb").write(exact + b"\0" * 100)
    garbage = bytes((i * 37 + 11) % 255 + 1 for i in range(37))  # never 0
    open(j("trailing-garbage-37.tar"), "wb").write(exact + garbage)
    open(j("no-eoa.tar"), "wb").write(raw[:end])
    open(j("eoa-only.tar"), "wb").write(b"\0" * 1024)
    open(j("python-ustar.tar.gz"), "wb").write(gzip_bytes(raw))
    # two gzip members; the split point is inside the data of text.txt and
    # is not block aligned.
    tf = tarfile.open(fileobj=io.BytesIO(raw))
    m = tf.getmember("pydir/text.txt")
    split = m.offset_data + 1000
    open(j("multi-member.tar.gz"), "wb").write(gzip_bytes(raw[:split]) + gzip_bytes(raw[split:]))


# ---------------------------------------------------------------------------
# invalid fixtures


def small_base(fmt=tarfile.USTAR_FORMAT, extra=()):
    return write_tar(None, [
        entry("hello.txt", data=det_bytes("text", 1000)),
        entry("dir/", "dir"),
        entry("dir/b.txt", data=b"bee\n"),
    ] + list(extra), fmt)


def patch(raw, off, new):
    b = bytearray(raw)
    b[off:off + len(new)] = new
    return bytes(b)


def cmd_invalid(outdir):
    j = lambda n: os.path.join(outdir, n)
    w = lambda n, d: open(j(n), "wb").write(d)
    base = small_base()
    offs = header_offsets(base)

    # 1. checksum field does not match the header
    good = int(base[148:154], 8)
    w("bad-checksum.tar", patch(base, 148, b"%06o\0 " % ((good + 1) & 0o777777)))

    # 2. size field contains non-octal garbage (checksum recomputed)
    w("size-non-octal.tar", fix_checksum(patch(base, 124, b"0000z1x7!77\0"), 0))

    # 3. negative base-256 size (first byte 0xff), checksum recomputed
    w("size-negative-base256.tar",
      fix_checksum(patch(base, 124, b"\xff" * 12), 0))      # == -1

    # 4. archive ends in the middle of the first header
    w("truncated-header.tar", base[:300])
    # 4b. ... or in the middle of a later header
    w("truncated-second-header.tar", base[:offs[1] + 300])

    # 5. archive ends inside a file's data
    w("truncated-payload.tar", base[:BLOCK + 600])
    # 5b. data complete but its block padding is missing
    w("truncated-padding.tar", base[:BLOCK + 1000])

    # 6. PAX record whose length prefix is wrong
    pax = write_tar(None, [entry("pax/" + "p" * 120, data=b"payload\n")], tarfile.PAX_FORMAT)
    rec_off = BLOCK  # data of the 'x' header
    length = int(pax[rec_off:rec_off + 3])   # e.g. b"136 path=..."
    assert pax[rec_off + 3:rec_off + 4] == b" "
    w("pax-bad-length.tar", patch(pax, rec_off, b"%03d" % (length - 7)))
    w("pax-length-overflow.tar", patch(pax, rec_off, b"999"))

    # 7. PAX path record containing a NUL byte
    w("pax-path-nul.tar", write_tar(None, [
        entry("placeholder", data=b"payload\n", pax={"path": "evil\x00name.txt"}),
    ], tarfile.PAX_FORMAT))

    # 7b. PAX size record that is not a number
    w("pax-size-garbage.tar", write_tar(None, [
        entry("pax-size.txt", data=b"payload\n", pax={"size": "12abc"}),
    ], tarfile.PAX_FORMAT))

    # 7c. PAX header followed directly by end of file
    p2 = write_tar(None, [entry("x/" + "z" * 120, data=b"payload\n")], tarfile.PAX_FORMAT)
    w("pax-header-at-eof.tar", p2[:2 * BLOCK])

    # 7d. GNU long-name ('L') header followed directly by end of file
    g2 = write_tar(None, [entry("x/" + "z" * 120, data=b"payload\n")], tarfile.GNU_FORMAT)
    w("gnu-longname-at-eof.tar", g2[:2 * BLOCK])

    # 8. not a tar at all
    text = det_bytes("text", 2048)
    open(j("not-a-tar.txt"), "wb").write(text)

    # 9. zero-byte file
    w("empty-file.tar", b"")

    # 10. reserved eStargz names inside the input
    w("stargz-index.tar", write_tar(None, [
        entry("a.txt", data=b"a\n"),
        entry("stargz.index.json", data=b'{"version":1,"entries":[]}\n'),
    ], tarfile.USTAR_FORMAT))
    w("stargz-index-dotslash.tar", write_tar(None, [
        entry("./a.txt", data=b"a\n"),
        entry("./stargz.index.json", data=b'{"version":1,"entries":[]}\n'),
    ], tarfile.USTAR_FORMAT))

    # 11. first header is 512 pseudo-random bytes
    w("random-header.tar", det_bytes("binary", BLOCK, b"random-header") + b"\0" * 1024)
    # 11b. first header all zeros except garbage in the middle (bytes 200..263)
    blk = bytearray(BLOCK)
    blk[200:264] = det_bytes("binary", 64, b"garbage-middle")
    w("zero-header-with-garbage.tar", bytes(blk) + b"\0" * 1024)


# ---------------------------------------------------------------------------


def cmd_normalize_gnu_times(path):
    """GNU tar --listed-incremental stores atime/ctime in the old GNU header
    fields (offsets 345 and 357). The ctime of a freshly made file cannot be
    fixed, so overwrite both with SOURCE_DATE_EPOCH and fix the checksum."""
    raw = open(path, "rb").read()
    for off in header_offsets(raw):
        blk = raw[off:off + BLOCK]
        if blk[257:265] != b"ustar  \0":
            continue
        for field in (345, 357):
            if blk[field:field + 12].strip(b"\0"):
                raw = patch(raw, off + field, b"%011o\0" % EPOCH)
        raw = fix_checksum(raw, off)
    open(path, "wb").write(raw)


# (file, how it is made, what it exercises, expected result)
# "ok" = must convert; otherwise the short phrase the error should contain.
TREE = ("dirs, empty / 1-byte / 10000-byte / 70000-byte files, symlink, hardlink, "
        "UTF-8 name (`utf8-名前-ñ-😀.txt`), setuid/setgid/sticky/0600 modes, uid 1000 "
        "(alice/staff)")
FIXTURES = [
    # ---- GNU tar, one per --format
    ("valid/gnu-v7.tar", "GNU tar `--format=v7`, `-C tree .`",
     "the tree minus devices and long names (v7 has no user/group names, regular files "
     "have typeflag NUL); names start with `./`", "ok"),
    ("valid/gnu-ustar.tar", "GNU tar `--format=ustar`, `-C tree .`",
     "the tree + fifo, char 1,3, block 7,0 and a 168-byte path split into the ustar "
     "prefix and name fields; names start with `./`", "ok"),
    ("valid/gnu-oldgnu.tar", "GNU tar `--format=oldgnu`, `-C tree .`",
     "the full tree; long names and link targets as GNU `L`/`K` records, uid/gid 3000000 "
     "in base-256; names start with `./`", "ok"),
    ("valid/gnu-gnu.tar", "GNU tar `--format=gnu`",
     "the full tree as in gnu-oldgnu, names without `./`", "ok"),
    ("valid/gnu-posix.tar", "GNU tar `--format=posix` (atime/ctime records deleted)",
     "the full tree, names without `./`; PAX `x` headers for path (long and non-ASCII), "
     "linkpath, uid/gid 3000000; the 168-byte path also goes to a PAX record", "ok"),
    ("valid/gnu-posix-xattrs.tar", "GNU tar `--format=posix --xattrs` over files with setfattr",
     "`SCHILY.xattr.user.*` records on a dir and files, one binary value (`\\x00\\xff\\x01\\xfe`)",
     "ok"),
    ("valid/gnu-incremental-level0.tar", "GNU tar `--format=gnu --listed-incremental` (level 0)",
     "`D` dumpdir entries (directory listings as data, `Y`/`D` flags). atime/ctime sit in the "
     "old-GNU header fields (pinned to 1600000000 by the script); Python's tarfile wrongly "
     "reads them as a ustar prefix (names like `13727410000/./a/`)", "ok"),
    ("valid/gnu-incremental-level1.tar", "GNU tar, level 1 of the same snapshot",
     "`D` entries with `N` (unchanged) flags; a deleted and a changed file", "ok"),
    ("valid/gnu-duplicate-names.tar", "GNU tar `-cf` then `-rf` of the same path",
     "`dup.txt` twice with different content and size (the last one wins on extraction)", "ok"),
    ("valid/exact-4mib.tar.gz", "GNU tar `--format=gnu` + `gzip -n -9`",
     "a file of exactly 4194304 bytes (repetitive text) followed by another entry", "ok"),
    # ---- bsdtar / busybox
    ("valid/bsdtar-ustar.tar", "bsdtar `--format ustar` (re-encoding a GNU tar of the ustar tree)",
     "libarchive's ustar writer: prefix split, devices, hardlinks", "ok"),
    ("valid/bsdtar-pax.tar", "bsdtar `--format pax` (re-encoding a GNU tar of the full tree)",
     "libarchive's PAX writer: `PaxHeader/` names, path/linkpath/uid/gid records, "
     "`LIBARCHIVE.xattr.*` + `SCHILY.xattr.*`; uid/gid fields as 8 octal digits without NUL", "ok"),
    ("valid/bsdtar-gnutar.tar", "bsdtar `--format gnutar`",
     "libarchive's GNU writer: `././@LongLink` `L`/`K`, base-256 uid/gid", "ok"),
    ("valid/busybox.tar", "busybox tar from the file system (sorted list, `--no-recursion`)",
     "the full tree as busybox writes it: `L`/`K` long names, uid/gid 3000000 as 8 octal "
     "digits without NUL (names come from a passwd/group bind-mounted in a private mount "
     "namespace)", "ok"),
    # ---- python
    ("valid/python-ustar.tar", "Python tarfile `USTAR_FORMAT`",
     "dirs, empty/1-byte/3000-byte files, symlink, hardlink, fifo, char, block, UTF-8 name, "
     "setuid/setgid/sticky, uid 1000 alice/staff, 171-byte path via prefix", "ok"),
    ("valid/python-gnu.tar", "Python tarfile `GNU_FORMAT`",
     "as python-ustar + `L`/`K` (150-byte name, >255-byte path, long symlink and hardlink "
     "targets), base-256 uid/gid 3000000, negative base-256 mtime (-86400)", "ok"),
    ("valid/python-pax.tar", "Python tarfile `PAX_FORMAT`",
     "as python-gnu via PAX records, plus non-ASCII uname/gname records (`ñandú`/`grüppe`) "
     "and mtime=-86400 as a PAX record", "ok"),
    ("valid/python-pax-global.tar", "Python tarfile `PAX_FORMAT`, `pax_headers=` on TarFile",
     "a PAX global header (`g`, comment + vendor key) before ordinary entries", "ok"),
    ("valid/python-pax-mtime-fraction.tar", "Python tarfile, float mtimes",
     "PAX `mtime` records with fractions (1577934245.6, 1577934245.25, -1.5)", "ok"),
    ("valid/python-gnu-nonutf8-name.tar", "Python tarfile `GNU_FORMAT`, surrogateescape",
     "names that are not UTF-8: `bad\\xff\\xfename`, Latin-1 `caf\\xe9`, a long one in an `L` "
     "record, a symlink target with `\\xff\\xfe`", "ok"),
    ("valid/python-pax-xattrs.tar", "Python tarfile, `SCHILY.xattr.*` in TarInfo.pax_headers",
     "xattrs without GNU tar: several per file, an empty value, `trusted.overlay.opaque`, "
     "a binary value (tarfile adds `hdrcharset=BINARY`)", "ok"),
    ("valid/python-whiteouts.tar", "Python tarfile `PAX_FORMAT`",
     "OCI whiteouts `.wh.removed.conf` and opaque `.wh..wh..opq` (ordinary files to tar)", "ok"),
    ("valid/python-duplicate-types.tar", "Python tarfile `USTAR_FORMAT`",
     "the same path as file, then symlink, then file; a directory repeated with another mode",
     "ok"),
    ("valid/git-archive.tar", "`git archive --format=tar HEAD` of a throwaway repo",
     "PAX global header `pax_global_header` with a `comment=<commit id>` record; "
     "git's modes (0664/0775), a symlink", "ok"),
    # ---- derived
    ("valid/trailing-zeros-100.tar", "python-ustar.tar cut after the two zero blocks + 100 zero bytes",
     "zero bytes after end-of-archive; file size not a multiple of 512", "ok"),
    ("valid/trailing-garbage-37.tar", "python-ustar.tar cut after the two zero blocks + 37 bytes",
     "non-zero garbage after end-of-archive (must be ignored)", "ok"),
    ("valid/no-eoa.tar", "python-ustar.tar cut right after the last entry's padding",
     "no end-of-archive blocks at all (GNU tar and tarfile accept it)", "ok"),
    ("valid/eoa-only.tar", "1024 zero bytes", "empty archive: only the end-of-archive blocks", "ok"),
    ("valid/python-ustar.tar.gz", "python-ustar.tar, gzip (mtime 0, no name)",
     "gzip-compressed input", "ok"),
    ("valid/multi-member.tar.gz", "python-ustar.tar split at an unaligned offset inside "
     "`pydir/text.txt`'s data, each part gzipped, concatenated",
     "multi-member gzip: only the concatenation of both members is a tar", "ok"),
    # ---- sparse
    ("sparse/gnu-oldgnu-sparse.tar", "GNU tar `--format=oldgnu --sparse --hole-detection=raw`",
     "typeflag `S` with the sparse map in the header; a regular file comes first", "sparse"),
    ("sparse/gnu-oldgnu-sparse-extended.tar", "GNU tar `--format=oldgnu --sparse`, 16 data segments",
     "`S` with `isextended` and an extension sparse header block", "sparse"),
    ("sparse/gnu-gnu-sparse.tar", "GNU tar `--format=gnu --sparse`", "typeflag `S`", "sparse"),
    ("sparse/gnu-posix-sparse-0.0.tar", "GNU tar `--format=posix --sparse-version=0.0`",
     "repeated `GNU.sparse.offset`/`numbytes` PAX records; ordinary typeflag `0`", "sparse"),
    ("sparse/gnu-posix-sparse-0.1.tar", "GNU tar `--format=posix --sparse-version=0.1`",
     "`GNU.sparse.map` record; entry named `./GNUSparseFile.1/...` (run as PID 1)", "sparse"),
    ("sparse/gnu-posix-sparse-1.0.tar", "GNU tar `--format=posix --sparse-version=1.0`",
     "`GNU.sparse.major/minor/realsize/name`; map stored at the start of the data", "sparse"),
    ("sparse/bsdtar-pax-sparse.tar", "bsdtar `--format pax` re-encoding gnu-posix-sparse-1.0.tar",
     "libarchive's GNU.sparse 1.0 writer (`GNUSparseFile.0/...`)", "sparse"),
    # ---- invalid
    ("invalid/bad-checksum.tar", "small ustar tar, first header's checksum + 1",
     "header checksum mismatch (GNU tar skips the entry and exits 2)", "checksum"),
    ("invalid/size-non-octal.tar", "size field `0000z1x7!77`, checksum recomputed",
     "non-octal size field", "size"),
    ("invalid/size-negative-base256.tar", "size field 12 x 0xff (= -1), checksum recomputed",
     "negative base-256 size", "size"),
    ("invalid/truncated-header.tar", "first 300 bytes of a tar", "EOF in the middle of the first header",
     "truncated"),
    ("invalid/truncated-second-header.tar", "cut 300 bytes into the second header",
     "EOF in the middle of a later header (GNU tar accepts it silently)", "truncated"),
    ("invalid/truncated-payload.tar", "cut 600 bytes into a 1000-byte file's data",
     "EOF inside file data", "truncated"),
    ("invalid/truncated-padding.tar", "cut right after a 1000-byte file's data",
     "file data complete but its padding to 512 missing", "truncated"),
    ("invalid/pax-bad-length.tar", "PAX `path` record's length prefix decreased by 7",
     "PAX record whose length does not end at a newline", "PAX record"),
    ("invalid/pax-length-overflow.tar", "PAX record length prefix set to 999",
     "PAX record longer than the extended header", "PAX record"),
    ("invalid/pax-path-nul.tar", "Python tarfile with pax_headers `path=evil\\x00name.txt`",
     "NUL byte inside a PAX path (GNU tar silently cuts it to `evil`)", "PAX record"),
    ("invalid/pax-size-garbage.tar", "Python tarfile with pax_headers `size=12abc`",
     "non-numeric PAX size record", "PAX record"),
    ("invalid/pax-header-at-eof.tar", "PAX `x` header + its data, then EOF",
     "extended header with no entry after it (GNU tar exits 0)", "truncated"),
    ("invalid/gnu-longname-at-eof.tar", "GNU `L` header + its data, then EOF",
     "long-name record with no entry after it (GNU tar exits 0)", "truncated"),
    ("invalid/not-a-tar.txt", "2048 bytes of text", "not a tar at all", "checksum"),
    ("invalid/empty-file.tar", "0-byte file", "empty input", "empty input"),
    ("invalid/stargz-index.tar", "Python tarfile", "an entry named `stargz.index.json` (reserved)",
     "stargz.index.json"),
    ("invalid/stargz-index-dotslash.tar", "Python tarfile",
     "an entry named `./stargz.index.json` (reserved)", "stargz.index.json"),
    ("invalid/random-header.tar", "512 pseudo-random bytes + 1024 zero bytes",
     "garbage first header", "checksum"),
    ("invalid/zero-header-with-garbage.tar", "zero block with 64 random bytes at offset 200, "
     "+ 1024 zero bytes", "first header all zeros except garbage in the middle "
     "(not an end-of-archive block)", "checksum"),
]


def tool_versions():
    import shutil
    import subprocess

    def first_line(cmd):
        if not shutil.which(cmd[0]):
            return None
        try:
            out = subprocess.run(cmd, capture_output=True, text=True).stdout
        except OSError:
            return None
        return out.strip().splitlines()[0] if out.strip() else None

    vs = [first_line(["tar", "--version"]), first_line(["bsdtar", "--version"]),
          first_line(["busybox"]), "Python %s tarfile" % sys.version.split()[0],
          first_line(["git", "--version"]), first_line(["gzip", "--version"])]
    return [v for v in vs if v]


def cmd_readme(outdir):
    present = set()
    for sub in ("valid", "sparse", "invalid"):
        for n in os.listdir(os.path.join(outdir, sub)):
            present.add(sub + "/" + n)
    listed = {f[0] for f in FIXTURES}
    unlisted = sorted(present - listed)
    if unlisted:
        raise SystemExit("fixtures missing from the README table: %s" % unlisted)
    missing = sorted(listed - present)
    for m in missing:
        print("WARNING: %s was not produced; left out of README.md" % m, file=sys.stderr)
    esc = lambda t: t.replace("|", "\\|")
    lines = [
        "# Tar fixtures",
        "",
        "Generated by `testdata/make-fixtures.sh` (with `testdata/make_fixtures.py`); do not edit",
        "by hand, run `bash testdata/make-fixtures.sh` to rebuild this directory and",
        "`testdata/sample-layer.tar` from scratch. Output is deterministic for given tool versions",
        "(SOURCE_DATE_EPOCH=1600000000, `--sort=name`, fixed owners, `gzip -n`).",
        "",
        "- `valid/`: must convert (the converter's output must list the same entries).",
        "- `sparse/`: well-formed sparse archives that the converter must refuse.",
        "- `invalid/`: malformed input that must be refused with an error.",
        "",
        "Expected: `ok`, or a short phrase the error message should contain.",
        "The \"tree\" of the GNU tar / bsdtar / busybox fixtures: " + TREE + ". The "
        "\"full tree\" adds a fifo, char and block devices, a 168-byte path, a 150-byte "
        "basename, a >255-byte path, a 150-byte symlink target, a >100-byte hardlink "
        "target and uid/gid 3000000 (biguser/biggroup).",
        "",
        "| file | made by | exercises | expected |",
        "| --- | --- | --- | --- |",
    ]
    for f, how, what, exp in FIXTURES:
        if f in missing:
            continue
        lines.append("| `%s` | %s | %s | %s |" % (f, esc(how), esc(what), exp))
    lines += ["", "`testdata/sample-layer.tar` (same script) is a small root-file-system-like layer "
              "(etc/, usr/bin, usr/lib/python3.*/ sources copied from this machine, symlinks, a "
              "hardlink) made with GNU tar `--format=posix --numeric-owner`; it is not listed "
              "above.", ""]
    lines += ["Made with:", ""] + ["- %s" % v for v in tool_versions()] + [""]
    with open(os.path.join(outdir, "README.md"), "w") as fh:
        fh.write("\n".join(lines))


def cmd_check_valid(paths):
    bad = 0
    for p in paths:
        try:
            with tarfile.open(p, "r:*") as tf:
                n = 0
                for m in tf:
                    n += 1
                    if m.isreg():
                        data = tf.extractfile(m).read()
                        assert len(data) == m.size, (m.name, len(data), m.size)
            print("python-ok %-40s %d members" % (os.path.basename(p), n))
        except Exception as e:  # noqa: BLE001
            bad += 1
            print("python-FAIL %-38s %s: %s" % (os.path.basename(p), type(e).__name__, e))
    return bad


def main(argv):
    if not argv:
        raise SystemExit(__doc__)
    cmd, args = argv[0], argv[1:]
    if cmd == "bytes":
        cmd_bytes(*args)
    elif cmd == "python":
        cmd_python(*args)
    elif cmd == "derive":
        cmd_derive(*args)
    elif cmd == "invalid":
        cmd_invalid(*args)
    elif cmd == "normalize-gnu-times":
        cmd_normalize_gnu_times(*args)
    elif cmd == "readme":
        cmd_readme(*args)
    elif cmd == "check-valid":
        sys.exit(1 if cmd_check_valid(args) else 0)
    else:
        raise SystemExit("unknown command %r" % cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
