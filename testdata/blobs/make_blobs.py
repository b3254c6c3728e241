#!/usr/bin/env python3
"""Helper of make-blobs.sh: derives corrupted, hostile and control eStargz
blobs from reference-written ones, writes sidecars and the README.

Standard library only. Everything is deterministic for a given reference
driver and zlib version: the members this script compresses itself (TOC
members, one recompressed payload member) come from Python's zlib; footers
and TOC tar headers are built byte by byte (spec sections 2.2, 2.3, 2.6).

Subcommands (all paths are explicit; make-blobs.sh passes them):

  selftest BASE                      check this module's footer/TOC/JSON writers
                                     reproduce the reference's bytes exactly
  ref-sidecar OUT.json LINE SOURCE MODE CHUNK [PRIORITIZED]
  bad  OUTDIR BASE.esgz BASE.json SRC.tar   corrupted blobs  (needs $ESTARGZ_REF)
  hostile OUTDIR                     unpack-escape blobs    (needs $ESTARGZ_REF)
  control OUTDIR BASE.esgz BASE.json valid blobs rewritten by this script
  record ROOT RESULTS.tsv            merge `estargz-ref verify` results into sidecars
  readme ROOT                        write ROOT/README.md from the sidecars
"""

import gzip
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import zlib

FOOTER_SIZE = 51
LEGACY_FOOTER_SIZE = 47
TOC_NAME = "stargz.index.json"
EMPTY_SHA256 = "sha256:" + hashlib.sha256(b"").hexdigest()
MTIME = 1600000000  # SOURCE_DATE_EPOCH of the tar fixtures
HERE = os.path.dirname(os.path.abspath(__file__))
TESTDATA = os.path.dirname(HERE)


# ---------------------------------------------------------------------------
# byte-level building blocks


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def gz_member(data, level=9):
    """One gzip member with Go compress/gzip's header: no optional fields,
    MTIME 0, XFL 02 at level 9 (04 at level 1, else 00), OS 255 (spec 2.1)."""
    xfl = 2 if level == 9 else (4 if level == 1 else 0)
    co = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    body = co.compress(data) + co.flush()
    head = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + bytes([xfl, 0xFF])
    trail = struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return head + body + trail


def footer(off, offset_text=None):
    """The 51-byte eStargz footer (spec 2.2). offset_text overrides the 16
    ASCII characters of the offset field (for malformed variants)."""
    text = offset_text if offset_text is not None else "%016x" % off
    text = text.encode("ascii")
    assert len(text) == 16, text
    b = (b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff"  # gzip header, FLG=FEXTRA
         + b"\x1a\x00"                                  # XLEN 26
         + b"SG" + b"\x16\x00"                          # SI1 SI2, LEN 22
         + text + b"STARGZ"
         + b"\x01\x00\x00\xff\xff"                      # empty stored final block
         + b"\x00" * 8)                                 # CRC32, ISIZE
    assert len(b) == FOOTER_SIZE
    return b


def legacy_footer(off):
    """The 47-byte legacy stargz footer (spec 2.3)."""
    b = (b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff" + b"\x16\x00"
         + ("%016x" % off).encode() + b"STARGZ" + b"\x01\x00\x00\xff\xff" + b"\x00" * 8)
    assert len(b) == LEGACY_FOOTER_SIZE
    return b


def parse_footer(blob):
    f = blob[-FOOTER_SIZE:]
    assert f[:4] == b"\x1f\x8b\x08\x04" and f[12:16] == b"SG\x16\x00" and f[32:38] == b"STARGZ", f
    return int(f[16:32], 16)


def octal(n, width):
    """Zero-padded octal + NUL, `width` bytes in total (Go archive/tar)."""
    s = ("%0" + str(width - 1) + "o") % n
    assert len(s) == width - 1, (n, width)
    return s.encode() + b"\x00"


def toc_tar(content, name=TOC_NAME, size_field=None):
    """tar(stargz.index.json): USTAR header as Go archive/tar writes it
    (spec 2.6), content, zero padding to 512, two zero blocks.
    size_field overrides the header's size (content length by default)."""
    size = len(content) if size_field is None else size_field
    h = bytearray(512)

    def put(off, b):
        h[off:off + len(b)] = b

    put(0, name.encode())
    put(100, octal(0, 8))        # mode
    put(108, octal(0, 8))        # uid
    put(116, octal(0, 8))        # gid
    put(124, octal(size, 12))    # size
    put(136, octal(0, 12))       # mtime
    put(148, b" " * 8)           # checksum placeholder
    put(156, b"0")               # typeflag
    put(257, b"ustar\x00")
    put(263, b"00")
    put(329, octal(0, 8))        # devmajor
    put(337, octal(0, 8))        # devminor
    chk = sum(h)
    put(148, ("%06o" % chk).encode() + b"\x00 ")
    pad = (-len(content)) % 512
    return bytes(h) + content + b"\x00" * pad + b"\x00" * 1024


def go_string(s):
    """A JSON string as Go 1.19 encoding/json writes it (HTML escaping on,
    only \\n \\r \\t as short escapes, U+2028/2029 and U+FFFD escaped; spec 3.3)."""
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif c < 0x20 or ch in "<>&":
            out.append("\\u%04x" % c)
        elif c in (0x2028, 0x2029):
            out.append("\\u%04x" % c)
        elif c == 0xFFFD:
            # Go writes invalid UTF-8 bytes as the escape \ufffd (a real U+FFFD
            # would stay raw); TOCs get U+FFFD only from invalid bytes (spec 3.3).
            out.append("\\ufffd")
        elif 0xD800 <= c <= 0xDFFF:   # lone surrogate (from a \ud8xx escape): Go writes \ufffd
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_json(v, depth=0):
    """json.MarshalIndent(v, "", "\\t") for values parsed by json.loads
    (dict order = key order)."""
    tab = "\t"
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return go_string(v)
    if isinstance(v, list):
        if not v:
            return "[]"
        items = [tab * (depth + 1) + go_json(x, depth + 1) for x in v]
        return "[\n" + ",\n".join(items) + "\n" + tab * depth + "]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        items = [tab * (depth + 1) + go_string(k) + ": " + go_json(x, depth + 1) for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + tab * depth + "}"
    raise TypeError(type(v))


def encode_toc(toc):
    return go_json(toc).encode("utf-8")


class Blob:
    """A parsed reference blob: payload (everything before the TOC member),
    TOC member bytes, stored TOC JSON bytes and parsed TOC."""

    def __init__(self, data):
        self.data = data
        self.toc_off = parse_footer(data)
        self.payload = data[:self.toc_off]
        self.toc_member = data[self.toc_off:-FOOTER_SIZE]
        t = gzip.decompress(self.toc_member)
        assert t[:len(TOC_NAME) + 1] == TOC_NAME.encode() + b"\x00"
        size = int(t[124:135], 8)
        self.toc_tar = t
        self.toc_json = t[512:512 + size]
        self.toc = json.loads(self.toc_json)

    def entries(self):
        return self.toc["entries"]

    def find(self, name, typ=None, chunk_offset=None):
        for e in self.entries():
            if e["name"] != name:
                continue
            if typ is not None and e["type"] != typ:
                continue
            if chunk_offset is not None and e.get("chunkOffset", 0) != chunk_offset:
                continue
            return e
        raise KeyError((name, typ, chunk_offset))


def assemble(payload, toc_json=None, toc_member=None, level=9, foot=None):
    """payload + TOC member + footer. Either toc_json (raw JSON bytes, wrapped
    with toc_tar + gz_member) or a ready toc_member. The footer gets the
    correct TOC offset unless `foot` (bytes) is given."""
    if toc_member is None:
        toc_member = gz_member(toc_tar(toc_json), level)
    if foot is None:
        foot = footer(len(payload))
    return payload + toc_member + foot


def member_bounds(blob):
    """Sorted distinct member starts named by data entries, plus the TOC offset."""
    offs = sorted({e["offset"] for e in blob.entries() if e.get("offset")} | {0, blob.toc_off})
    return offs


def replace_member(blob, start, new_member):
    """Return (payload, toc) with the payload member starting at `start`
    replaced by `new_member` and every later `offset` shifted."""
    offs = member_bounds(blob)
    end = offs[offs.index(start) + 1]
    delta = len(new_member) - (end - start)
    payload = blob.payload[:start] + new_member + blob.payload[end:]
    toc = json.loads(blob.toc_json)
    for e in toc["entries"]:
        if e.get("offset", 0) > start:
            e["offset"] += delta
    return payload, toc, end


def member_content(blob, start):
    offs = member_bounds(blob)
    end = offs[offs.index(start) + 1]
    return gzip.decompress(blob.payload[start:end])


def ref_tool():
    p = os.environ.get("ESTARGZ_REF")
    if not p:
        sys.exit("make_blobs.py: $ESTARGZ_REF must name the estargz-ref binary")
    return p


def ref_lossless(tar_bytes, out_path, chunk):
    """Convert tar bytes with `estargz-ref lossless -chunk N`; returns the
    driver's JSON (dict)."""
    tmp = out_path + ".in.tar"
    with open(tmp, "wb") as f:
        f.write(tar_bytes)
    try:
        r = subprocess.run([ref_tool(), "lossless", "-chunk", str(chunk), tmp, out_path],
                           capture_output=True, text=True)
    finally:
        os.unlink(tmp)
    if r.returncode != 0:
        sys.exit("estargz-ref lossless failed for %s: %s" % (out_path, r.stderr.strip()))
    return json.loads(r.stdout)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def write_case(outdir, name, data, side):
    path = os.path.join(outdir, name + ".esgz")
    with open(path, "wb") as f:
        f.write(data)
    side = dict(side)
    side.setdefault("size", len(data))
    write_json(os.path.join(outdir, name + ".json"), side)


# ---------------------------------------------------------------------------
# selftest


def cmd_selftest(base_path):
    data = open(base_path, "rb").read()
    b = Blob(data)
    assert footer(b.toc_off) == data[-FOOTER_SIZE:], "footer bytes differ from the reference"
    assert encode_toc(b.toc) == b.toc_json, "Go JSON re-encoding differs from the reference"
    assert toc_tar(b.toc_json) == b.toc_tar, "TOC tar differs from the reference"
    assert b.toc_member[:10] == gz_member(b"x")[:10], "gzip header differs from the reference"
    # the spec's example footer (TOC at 774)
    assert footer(774).hex() == ("1f8b08040000000000ff1a00534716003030303030303030303030303033303653544152475a010000ffff0000000000000000")
    print("selftest ok: footer, TOC tar, Go JSON and gzip header reproduce %s" % os.path.basename(base_path))


# ---------------------------------------------------------------------------
# ref/ sidecars


def cmd_ref_sidecar(out, line, source, mode, chunk, prioritized=None):
    d = json.loads(line)
    d["source"] = source
    d["mode"] = mode
    d["chunk"] = int(chunk)
    if prioritized:
        d["prioritized"] = prioritized.split(",")
    if mode == "build":
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        if os.environ.get("GOMAXPROCS"):
            cpus = int(os.environ["GOMAXPROCS"])
        d["nproc"] = cpus
        d["note"] = ("estargz.Build partitions by GOMAXPROCS (spec 4.6): offsets, TOC digest, "
                     "blob digest and DiffID are those of a %d-CPU run" % cpus)
    write_json(out, d)


# ---------------------------------------------------------------------------
# bad/


def retar(src_tar, edit):
    """Re-write the fixture tar with Python tarfile (same format), passing
    the member list through edit(members, payloads) first."""
    src = tarfile.open(src_tar)
    members = src.getmembers()
    payloads = {id(m): (src.extractfile(m).read() if m.isreg() else None) for m in members}
    members = edit(members, payloads)
    buf = io.BytesIO()
    out = tarfile.open(fileobj=buf, mode="w", format=src.format, encoding="utf-8")
    for m in members:
        p = payloads.get(id(m))
        out.addfile(m, io.BytesIO(p) if p is not None else None)
    out.close()
    return buf.getvalue()


def lnk(name, target, like):
    m = tarfile.TarInfo(name)
    m.type = tarfile.LNKTYPE
    m.linkname = target
    for a in ("mode", "uid", "gid", "uname", "gname", "mtime"):
        setattr(m, a, getattr(like, a))
    return m


def cmd_bad(outdir, base_path, base_side_path, src_tar):
    os.makedirs(outdir, exist_ok=True)
    data = open(base_path, "rb").read()
    base_side = json.load(open(base_side_path))
    B = Blob(data)
    base_rel = "ref/" + os.path.basename(base_path)
    orig_digest = base_side["toc_digest"]
    assert sha256(B.toc_json) == orig_digest
    L = len(data)
    chunk = base_side["chunk"]
    n = 0

    def case(name, blob, what, expect, how, toc_digest=None, **extra):
        nonlocal n
        side = {"expect": expect, "what": what, "how": how, "base": base_rel}
        if toc_digest:
            side["toc_digest"] = toc_digest
        side.update(extra)
        write_case(outdir, name, blob, side)
        n += 1

    def toc_case(name, mutate, what, expect, how, **extra):
        toc = json.loads(B.toc_json)
        mutate(toc)
        j = encode_toc(toc)
        case(name, assemble(B.payload, j), what, expect, how, toc_digest=sha256(j), **extra)

    # ---- footer -----------------------------------------------------------
    case("toc-offset-past-end", assemble(B.payload, toc_member=B.toc_member, foot=footer(L + 4096)),
         "footer TOC offset is %d, past the end of the %d-byte blob" % (L + 4096, L),
         "TOC offset out of range",
         "base blob with the footer's offset field set to size+4096", toc_digest=orig_digest)
    case("toc-offset-negative",
         assemble(B.payload, toc_member=B.toc_member, foot=footer(0, "-000000000000064")),
         "footer TOC offset field is \"-000000000000064\" (ParseInt gives -100)",
         "TOC offset negative / not 16 hex digits",
         "base blob with the footer's offset text replaced", toc_digest=orig_digest)
    case("toc-offset-nonhex",
         assemble(B.payload, toc_member=B.toc_member, foot=footer(0, "00000X0000000000")),
         "footer TOC offset field is \"00000X0000000000\"",
         "TOC offset not hex",
         "base blob with the footer's offset text replaced", toc_digest=orig_digest)
    case("toc-offset-plus-sign",
         assemble(B.payload, toc_member=B.toc_member, foot=footer(0, "+" + "%015x" % B.toc_off)),
         "footer TOC offset field is \"+%015x\" (right value, but with a sign; Go ParseInt accepts it)" % B.toc_off,
         "TOC offset not exactly 16 hex digits",
         "base blob with the footer's offset text replaced", toc_digest=orig_digest)
    case("toc-offset-inside-footer", assemble(B.payload, toc_member=B.toc_member, foot=footer(L - 40)),
         "footer TOC offset is %d, inside the footer itself (footer starts at %d)" % (L - 40, L - FOOTER_SIZE),
         "TOC offset leaves no room for a TOC member",
         "base blob with the footer's offset field set to size-40", toc_digest=orig_digest)
    case("toc-offset-at-footer", assemble(B.payload, toc_member=B.toc_member, foot=footer(L - FOOTER_SIZE)),
         "footer TOC offset is %d, the footer's own first byte (an empty gzip member, no tar)" % (L - FOOTER_SIZE),
         "TOC offset leaves no room for a TOC member",
         "base blob with the footer's offset field set to size-51", toc_digest=orig_digest)
    f = bytearray(footer(B.toc_off))
    f[10:12] = b"\x02\x00"
    case("footer-short-extra", assemble(B.payload, toc_member=B.toc_member, foot=bytes(f)),
         "footer gzip header says XLEN 2: the Extra field is just \"SG\" (no LEN, no offset, no magic); "
         "the remaining 37 footer bytes are the original ones",
         "footer Extra too short",
         "base blob, footer bytes 10-11 (XLEN) set to 02 00", toc_digest=orig_digest)
    f = bytearray(footer(B.toc_off))
    f[10:12] = b"\x0a\x00"
    case("footer-short-extra-len22", assemble(B.payload, toc_member=B.toc_member, foot=bytes(f)),
         "footer XLEN 10 while the subfield's LEN still says 22: Extra ends 18 bytes early",
         "footer Extra shorter than its subfield length",
         "base blob, footer XLEN set to 0a 00 (LEN left at 16 00)", toc_digest=orig_digest)
    f = bytearray(footer(B.toc_off))
    f[14:16] = b"\x10\x00"
    case("footer-bad-subfield-len", assemble(B.payload, toc_member=B.toc_member, foot=bytes(f)),
         "footer subfield LEN 16 instead of 22 (XLEN still 26)",
         "footer subfield length wrong",
         "base blob, footer bytes 14-15 (LEN) set to 10 00", toc_digest=orig_digest)
    f = bytearray(footer(B.toc_off))
    f[32:38] = b"STARGX"
    case("footer-bad-magic", assemble(B.payload, toc_member=B.toc_member, foot=bytes(f)),
         "footer magic is \"STARGX\" instead of \"STARGZ\"",
         "bad footer magic",
         "base blob, footer bytes 32-37 replaced", toc_digest=orig_digest)
    case("truncated-blob", data[:-10],
         "base blob with its last 10 bytes cut (footer incomplete)",
         "no valid footer (truncated)",
         "data[:-10]", toc_digest=orig_digest)
    case("tiny-blob", data[:3], "the first 3 bytes of the base blob",
         "blob too small for a footer", "data[:3]")
    case("empty-blob", b"", "a 0-byte blob", "blob too small for a footer", "b''")

    # ---- TOC member -----------------------------------------------------------
    case("toc-not-json", assemble(B.payload, b"not json"),
         "TOC member holds a well-formed tar whose stargz.index.json is the 8 bytes \"not json\"",
         "TOC is not JSON",
         "payload + gz(tar(stargz.index.json = 'not json')) + footer", toc_digest=None)
    case("toc-not-gzip", assemble(B.payload, toc_member=toc_tar(B.toc_json)),
         "the footer points at the TOC tar written uncompressed (not a gzip member)",
         "TOC member is not gzip",
         "payload + toc_tar(original JSON) without gzip + footer(len(payload))", toc_digest=orig_digest)
    case("toc-misnamed", assemble(B.payload, toc_member=gz_member(toc_tar(B.toc_json, name="./" + TOC_NAME))),
         "TOC tar entry is named \"./stargz.index.json\" (JSON unchanged)",
         "TOC tar entry misnamed",
         "payload + gz(tar('./stargz.index.json' = original JSON)) + footer", toc_digest=orig_digest)
    garbage = b"\n\ngarbage after the TOC JSON\n"
    case("toc-trailing-garbage", assemble(B.payload, B.toc_json + garbage),
         "stargz.index.json holds the original JSON followed by %r (non-whitespace)" % garbage.decode(),
         "non-whitespace after the TOC JSON",
         "payload + gz(tar(original JSON + garbage)) + footer",
         toc_digest=sha256(B.toc_json + garbage), json_digest=orig_digest,
         note="toc_digest covers the whole entry content (JSON + garbage), as spec 5.2 requires and as "
              "the reference computes for this small entry; json_digest covers the JSON alone")
    huge = 0o77777777777
    case("toc-huge-size-claim",
         assemble(B.payload, toc_member=gz_member(toc_tar(B.toc_json, size_field=huge))),
         "TOC tar header claims size 0o77777777777 (%d bytes); the member holds the %d-byte JSON, "
         "padding and the two zero blocks" % (huge, len(B.toc_json)),
         "TOC size claim exceeds the member / caps",
         "payload + gz(tar header with size 77777777777 + original JSON) + footer", toc_digest=orig_digest,
         note="toc_digest is that of the JSON; the reference digests everything its tar reader yields "
              "(JSON + padding + the two zero blocks, up to EOF)")
    m = bytearray(gz_member(toc_tar(B.toc_json)))
    crc = struct.unpack("<I", m[-8:-4])[0]
    m[-8:-4] = struct.pack("<I", crc ^ 0xFFFFFFFF)
    case("toc-bad-crc", assemble(B.payload, toc_member=bytes(m)),
         "TOC member's gzip CRC32 inverted (content intact)",
         "TOC member CRC mismatch",
         "payload + gz(tar(original JSON)) with trailer CRC32 ^ 0xffffffff + footer", toc_digest=orig_digest)
    m = bytearray(gz_member(toc_tar(B.toc_json)))
    m[-4:] = struct.pack("<I", (struct.unpack("<I", m[-4:])[0] + 1) & 0xFFFFFFFF)
    case("toc-bad-isize", assemble(B.payload, toc_member=bytes(m)),
         "TOC member's gzip ISIZE off by one (content and CRC intact)",
         "TOC member length mismatch",
         "payload + gz(tar(original JSON)) with trailer ISIZE+1 + footer", toc_digest=orig_digest)

    # ---- TOC content ------------------------------------------------------------
    def tampered_toc(toc):
        e = [x for x in toc["entries"] if x["name"] == "pydir/text.txt" and x.get("chunkOffset") == chunk][0]
        e["chunkDigest"] = sha256(b"tampered")
    toc = json.loads(B.toc_json)
    tampered_toc(toc)
    j = encode_toc(toc)
    case("tampered-toc", assemble(B.payload, j),
         "chunkDigest of pydir/text.txt's chunk at %d replaced by sha256(\"tampered\"), blob re-footered" % chunk,
         "TOC digest mismatch (vs toc_digest); with actual_toc_digest: chunk digest mismatch",
         "TOC entry edited, payload unchanged", toc_digest=orig_digest, actual_toc_digest=sha256(j))

    def drop_chunk_digest(toc):
        e = [x for x in toc["entries"] if x["name"] == "pydir/text.txt" and x.get("chunkOffset") == chunk][0]
        del e["chunkDigest"]
    toc_case("missing-chunk-digest", drop_chunk_digest,
             "chunk entry of pydir/text.txt at chunkOffset %d has no chunkDigest" % chunk,
             "chunkDigest missing", "TOC entry edited, payload unchanged")

    def bad_digest(toc):
        e = [x for x in toc["entries"] if x["name"] == "pydir/text.txt" and x.get("chunkOffset") == chunk][0]
        e["chunkDigest"] = "sha256:xyz"
    toc_case("bad-digest-string", bad_digest,
             "chunkDigest of pydir/text.txt's chunk at %d is \"sha256:xyz\"" % chunk,
             "malformed digest", "TOC entry edited, payload unchanged")

    def neg_size(toc):
        [x for x in toc["entries"] if x["name"] == "pydir/one-byte"][0]["size"] = -1
    toc_case("negative-size", neg_size, "pydir/one-byte (1 byte of data, offset and chunkDigest kept) has \"size\": -1",
             "negative size", "TOC entry edited, payload unchanged")

    def neg_offset(toc):
        [x for x in toc["entries"] if x["name"] == "pydir/one-byte"][0]["offset"] = -1
    toc_case("negative-offset", neg_offset, "pydir/one-byte has \"offset\": -1",
             "negative offset", "TOC entry edited, payload unchanged")

    def weird(toc):
        [x for x in toc["entries"] if x["name"] == "pydir/fifo"][0]["type"] = "weird"
    toc_case("unknown-type", weird, "pydir/fifo has \"type\": \"weird\"",
             "unknown entry type", "TOC entry edited, payload unchanged")

    def version2(toc):
        toc["version"] = 2
    toc_case("toc-version-2", version2, "TOC \"version\": 2", "unsupported TOC version",
             "TOC edited, payload unchanged")

    def entries_null(toc):
        toc["entries"] = None
    toc_case("entries-null-with-payload", entries_null,
             "TOC is {\"version\": 1, \"entries\": null} while the payload still holds all files",
             "TOC does not describe the payload (full mode); a plain open yields only a root",
             "TOC replaced, payload unchanged")

    # chunks of pydir/text.txt: reg @0, chunk @chunk, chunk @2*chunk (last)
    text = tarfile.open(src_tar).extractfile("pydir/text.txt").read()
    last = [x for x in B.entries() if x["name"] == "pydir/text.txt" and x.get("chunkOffset") == 2 * chunk][0]
    last_content = member_content(B, last["offset"])  # file tail, tar padding, following headers
    assert last_content[:len(text) - 2 * chunk] == text[2 * chunk:]

    def gap(toc):
        e = [x for x in toc["entries"] if x["name"] == "pydir/text.txt" and x.get("chunkOffset") == 2 * chunk][0]
        e["chunkOffset"] = 2 * chunk + 52
        e["chunkDigest"] = sha256(last_content[:len(text) - (2 * chunk + 52)])
    toc_case("chunk-gap", gap,
             "pydir/text.txt: last chunk's chunkOffset moved %d -> %d, so bytes [%d, %d) belong to no chunk; "
             "its chunkDigest was recomputed over what its member yields for the implied size (%d bytes), "
             "so per-chunk digests alone still pass"
             % (2 * chunk, 2 * chunk + 52, 2 * chunk, 2 * chunk + 52, len(text) - 2 * chunk - 52),
             "chunks not contiguous (gap); file digest mismatch",
             "TOC entry edited, payload unchanged")

    def overlap(toc):
        e = [x for x in toc["entries"] if x["name"] == "pydir/text.txt" and x.get("chunkOffset") == 2 * chunk][0]
        e["chunkOffset"] = 2 * chunk - 48
        e["chunkDigest"] = sha256(last_content[:len(text) - (2 * chunk - 48)])
    toc_case("chunk-overlap", overlap,
             "pydir/text.txt: last chunk's chunkOffset moved %d -> %d, overlapping the previous chunk by 48 bytes; "
             "its chunkDigest was recomputed over what its member yields for the implied size (%d bytes: "
             "the file tail + 48 bytes of tar padding), so per-chunk digests alone still pass"
             % (2 * chunk, 2 * chunk - 48, len(text) - 2 * chunk + 48),
             "chunks overlap; file digest mismatch",
             "TOC entry edited, payload unchanged")

    def swap(toc):
        a = [x for x in toc["entries"] if x["name"] == "pydir/setuid"][0]
        b = [x for x in toc["entries"] if x["name"] == "pydir/setgid"][0]
        assert a["chunkDigest"] == b["chunkDigest"]
        a["offset"], b["offset"] = b["offset"], a["offset"]
    toc_case("offsets-decreasing", swap,
             "offsets of pydir/setuid and pydir/setgid swapped; both hold \"#!/bin/sh\\n\", so every "
             "chunk digest still matches and only offset order is wrong",
             "data offsets not monotonic",
             "TOC entries edited, payload unchanged")

    data_entries = [x for x in B.entries() if x.get("offset")]
    last_data = data_entries[-1]["name"]

    def past_toc(toc):
        [x for x in toc["entries"] if x["name"] == last_data][0]["offset"] = B.toc_off
    toc_case("offset-past-toc", past_toc,
             "the last data entry (%s) has offset %d = the TOC offset (it points at the TOC member)"
             % (last_data, B.toc_off),
             "data offset not below the TOC offset",
             "TOC entry edited, payload unchanged")

    # tampered chunk bytes: member of text.txt's second chunk, one byte changed
    e2 = B.find("pydir/text.txt", "chunk", chunk)
    content = member_content(B, e2["offset"])
    assert content == text[chunk:2 * chunk]
    bad = bytearray(content)
    bad[100] ^= 0x20
    payload, toc, _ = replace_member(B, e2["offset"], gz_member(bytes(bad)))
    j = encode_toc(toc)
    case("tampered-chunk-bytes", assemble(payload, j),
         "pydir/text.txt's chunk at %d: its member recompressed with byte %d of the chunk flipped "
         "(%r -> %r); later offsets, TOC offset and footer adjusted, chunkDigest left as is"
         % (chunk, chunk + 100, chr(content[100]), chr(bad[100])),
         "chunk digest mismatch",
         "member replaced by gz(content with one byte xor 0x20), offsets shifted, TOC rewritten, re-footered",
         toc_digest=sha256(j))
    flip = bytearray(B.payload)
    pos = e2["offset"] + 120
    flip[pos] ^= 0xFF
    case("payload-bitflip", assemble(bytes(flip), toc_member=B.toc_member),
         "one compressed byte (blob offset %d, inside the member of pydir/text.txt's chunk at %d) inverted"
         % (pos, chunk),
         "chunk does not decompress / CRC or digest mismatch",
         "payload byte xor 0xff; TOC and footer unchanged", toc_digest=orig_digest)

    # ---- tar-level defects: modified fixture tar, converted by the reference -----
    def tar_case(name, edit, what, expect, how):
        path = os.path.join(outdir, name + ".esgz")
        r = ref_lossless(retar(src_tar, edit), path, chunk)
        side = {"expect": expect, "what": what,
                "how": how + "; converted with estargz-ref lossless -chunk %d" % chunk,
                "base": os.path.relpath(os.path.abspath(src_tar), TESTDATA),
                "toc_digest": r["toc_digest"], "diff_id": r["diff_id"],
                "compressed_digest": r["compressed_digest"], "size": r["compressed_size"]}
        write_json(os.path.join(outdir, name + ".json"), side)
        nonlocal n
        n += 1

    def relink(target, extra=None):
        def edit(ms, pl):
            out = []
            for m in ms:
                if m.name == "pydir/hardlink":
                    m.linkname = target
                    out.append(m)
                    if extra:
                        out.append(lnk(extra[0], extra[1], m))
                else:
                    out.append(m)
            return out
        return edit

    tar_case("hardlink-cycle", relink("pydir/hardlink2", ("pydir/hardlink2", "pydir/hardlink")),
             "hardlink pydir/hardlink -> pydir/hardlink2 and pydir/hardlink2 -> pydir/hardlink",
             "hardlink cycle",
             "python-ustar.tar re-written by tarfile: pydir/hardlink's target changed, pydir/hardlink2 added after it")
    tar_case("hardlink-self", relink("pydir/hardlink"),
             "hardlink pydir/hardlink -> pydir/hardlink (itself)",
             "hardlink cycle (self)",
             "python-ustar.tar re-written by tarfile: pydir/hardlink's target set to itself")
    tar_case("hardlink-missing-target", relink("pydir/nope"),
             "hardlink pydir/hardlink -> pydir/nope, which does not exist",
             "hardlink target not found",
             "python-ustar.tar re-written by tarfile: pydir/hardlink's target set to pydir/nope")
    tar_case("hardlink-to-directory", relink("pydir/sticky"),
             "hardlink pydir/hardlink -> pydir/sticky, a directory",
             "hardlink to a directory",
             "python-ustar.tar re-written by tarfile: pydir/hardlink's target set to pydir/sticky")

    def child(ms, pl):
        out = []
        for m in ms:
            out.append(m)
            if m.name == "pydir/one-byte":
                c = tarfile.TarInfo("pydir/one-byte/x")
                for a in ("mode", "uid", "gid", "uname", "gname", "mtime"):
                    setattr(c, a, getattr(m, a))
                c.size = 2
                pl[id(c)] = b"x\n"
                out.append(c)
        return out
    tar_case("child-of-regular-file", child,
             "entry pydir/one-byte/x (a 2-byte reg) while pydir/one-byte is a regular file",
             "parent is not a directory",
             "python-ustar.tar re-written by tarfile: reg pydir/one-byte/x inserted after pydir/one-byte")
    print("bad: %d blobs" % n)


# ---------------------------------------------------------------------------
# hostile/


def ti(name, typ=tarfile.REGTYPE, data=b"", link="", mode=None):
    m = tarfile.TarInfo(name)
    m.type = typ
    m.linkname = link
    m.mtime = MTIME
    m.uid = m.gid = 0
    m.uname = m.gname = "root"
    if mode is None:
        mode = {tarfile.DIRTYPE: 0o755, tarfile.SYMTYPE: 0o777}.get(typ, 0o644)
    m.mode = mode
    m.size = len(data) if typ == tarfile.REGTYPE else 0
    return m, (data if typ == tarfile.REGTYPE else None)


def mktar(items):
    buf = io.BytesIO()
    t = tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT)
    for m, d in items:
        t.addfile(m, io.BytesIO(d) if d is not None else None)
    t.close()
    return buf.getvalue()


def cmd_hostile(outdir):
    os.makedirs(outdir, exist_ok=True)
    S, L, D = tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE
    cases = [
        ("dotdot-escape",
         [ti("ok.txt", data=b"inside\n"), ti("../escape.txt", data=b"escaped via ..\n"),
          ti("sub/../../escape2.txt", data=b"escaped via sub/../..\n")],
         "regular files ../escape.txt and sub/../../escape2.txt (names climb out of the target)"),
        ("absolute-path",
         [ti("ok.txt", data=b"inside\n"), ti("/abs.txt", data=b"absolute\n")],
         "regular file /abs.txt (absolute name)"),
        ("symlink-dir-escape",
         [ti("link", S, link="/"), ti("link/etc/evil", data=b"written through a symlink\n")],
         "symlink link -> /, then regular file link/etc/evil (write through the symlink)"),
        ("hardlink-absolute",
         [ti("ok.txt", data=b"inside\n"), ti("h", L, link="/etc/passwd")],
         "hardlink h -> /etc/passwd (link to a host file outside the target)"),
        ("symlink-chain-escape",
         [ti("a", S, link="b"), ti("b", S, link="../.."), ti("a/x", data=b"written through a symlink chain\n")],
         "symlink a -> b, symlink b -> ../.., then regular file a/x"),
    ]
    for name, items, what in cases:
        tar = mktar(items)
        path = os.path.join(outdir, name + ".esgz")
        r = ref_lossless(tar, path, 0)
        side = {"what": what, "expect": "nothing outside the target dir",
                "how": "tar written by Python tarfile (USTAR, mtime %d, root:root), converted with "
                       "estargz-ref lossless (default chunk)" % MTIME,
                "entries": [m.name + ({S: " -> ", L: " => "}.get(m.type, "") + m.linkname if m.linkname else "")
                            for m, _ in items],
                "toc_digest": r["toc_digest"], "diff_id": r["diff_id"],
                "compressed_digest": r["compressed_digest"], "size": r["compressed_size"],
                "tar_sha256": sha256(tar)}
        write_json(os.path.join(outdir, name + ".json"), side)
    print("hostile: %d blobs" % len(cases))


# ---------------------------------------------------------------------------
# control/


def cmd_control(outdir, base_path, base_side_path):
    os.makedirs(outdir, exist_ok=True)
    data = open(base_path, "rb").read()
    B = Blob(data)
    base_rel = "ref/" + os.path.basename(base_path)
    chunk = json.load(open(base_side_path))["chunk"]
    blob = assemble(B.payload, B.toc_json)
    write_case(outdir, "python-toc-member", blob, {
        "expect": "valid", "what": "base blob with its TOC member rebuilt by make_blobs.py (same JSON)",
        "how": "payload + gz_member(toc_tar(original JSON)) + footer(len(payload))", "base": base_rel,
        "toc_digest": sha256(B.toc_json)})
    e2 = B.find("pydir/text.txt", "chunk", chunk)
    content = member_content(B, e2["offset"])
    payload, toc, _ = replace_member(B, e2["offset"], gz_member(content, level=1))
    j = encode_toc(toc)
    write_case(outdir, "recompressed-member", assemble(payload, j), {
        "expect": "valid",
        "what": "pydir/text.txt's chunk at %d recompressed (level 1, same content), later offsets shifted, "
                "TOC and footer rewritten: the code path of bad/tampered-chunk-bytes without the defect" % chunk,
        "how": "replace_member + encode_toc + assemble", "base": base_rel, "toc_digest": sha256(j)})
    write_case(outdir, "legacy-footer", B.payload + B.toc_member + legacy_footer(B.toc_off), {
        "expect": "valid (legacy stargz, spec 2.3: read only)",
        "what": "base blob with the 47-byte legacy stargz footer instead of the 51-byte eStargz footer",
        "how": "payload + original TOC member + legacy_footer(toc offset)", "base": base_rel,
        "toc_digest": sha256(B.toc_json)})
    print("control: 3 blobs")


# ---------------------------------------------------------------------------
# verification results, README


def classify(kind, rc, line):
    if rc == 124:
        return "TIMEOUT"
    if rc == 0:
        return "passes" if kind != "bad" else "**MISSES** (passes)"
    if "stack" in line:
        return "**CRASH** (stack overflow)"
    if line.startswith("panic:"):
        return "**PANIC**"
    if rc == 1:
        return "rejects"
    return "fails (exit %d)" % rc


def cmd_record(root, tsv):
    """TSV rows: blob, run (sidecar = -toc-digest <sidecar toc_digest>;
    own = no -toc-digest, i.e. against the digest the reference computes
    itself), exit code, arguments, first line of the output."""
    for row in open(tsv, encoding="utf-8", errors="replace").read().splitlines():
        rel, run, rc, args, line = row.split("\t", 4)
        side = os.path.join(root, rel[:-len(".esgz")] + ".json")
        d = json.load(open(side))
        kind = rel.split("/")[0]
        key = "reference_verify" if run == "sidecar" else "reference_verify_own_digest"
        d[key] = {"args": args, "exit": int(rc), "first_line": line,
                  "verdict": classify(kind, int(rc), line).replace("*", "")}
        write_json(side, d)


def md(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def cmd_readme(root):
    def load(sub):
        d = os.path.join(root, sub)
        out = []
        for fn in sorted(os.listdir(d)):
            if fn.endswith(".esgz"):
                side = json.load(open(os.path.join(d, fn[:-5] + ".json")))
                out.append((fn, side))
        return out

    def ver(side, kind, key="reference_verify"):
        v = side.get(key)
        if not v:
            return "not run"
        return "%s: exit %d, `%s`" % (classify(kind, v["exit"], v["first_line"]), v["exit"],
                                      md(v["first_line"][:160]))

    L = []
    w = L.append
    w("# eStargz test blobs")
    w("")
    w("Generated by `make-blobs.sh` (with `make_blobs.py`); do not edit by hand. Regenerate with")
    w("")
    w("    testdata/blobs/make-blobs.sh            # needs estargz-ref on PATH or $ESTARGZ_REF")
    w("")
    w("Every `NAME.esgz` has a sidecar `NAME.json`. All `reference_verify` results are from")
    w("`estargz-ref verify [-toc-digest <sidecar toc_digest>] NAME.esgz` (reference v0.12.0, see")
    w("`../../../shared/tools/estargz-ref/README.md`), with the exit code and the first line of its")
    w("combined output; exit 2 is a Go panic or fatal error. Section numbers refer to")
    w("`../../../shared/docs/estargz-format.md`.")
    w("")
    w("Determinism: the reference's output is deterministic except that `build` depends on the CPU")
    w("count (spec 4.6; the sidecars record `nproc`). Members compressed by `make_blobs.py` (TOC")
    w("members of rewritten blobs, one payload member) depend on the zlib version; footers and TOC")
    w("tar headers are built byte by byte, and `make_blobs.py selftest` checks they reproduce the")
    w("reference's bytes exactly (also the Go `MarshalIndent` re-encoding of the TOC JSON).")
    w("")
    w("## ref/ - written by the reference driver")
    w("")
    w("Sidecar: the driver's JSON (`toc_digest`, `diff_id`, `compressed_digest`, `compressed_size`),")
    w("`source` (tar, relative to `testdata/`), `mode` (`lossless` = `Writer.AppendTarLossLess`,")
    w("`build` = `estargz.Build`), `chunk` (0 = 4 MiB default), `prioritized`, `nproc`. A correct")
    w("reader opens each, verifies it against `toc_digest`, and reads every file; `unpack` of a")
    w("lossless blob returns the source tar byte for byte.")
    w("")
    w("| blob | source | mode | chunk | size | reference verify |")
    w("|---|---|---|---|---|---|")
    for fn, s in load("ref"):
        mode = s["mode"] + (" -prioritized " + ",".join(s["prioritized"]) if s.get("prioritized") else "")
        w("| `%s` | `%s` | %s | %s | %d | %s |" % (fn, s["source"], md(mode), s["chunk"] or "default",
                                                    s["compressed_size"], ver(s, "ref")))
    w("")
    w("Known gap: `lossless-eoa-only` (an input that is only an end-of-archive) has `\"entries\": null`;")
    w("reference v0.12.0 synthesizes no root and its `verify` fails with `no root` (spec 8.1 #13). A")
    w("correct reader opens it with an empty root directory.")
    w("")
    w("## bad/ - corrupted and malicious blobs")
    w("")
    w("Unless the `how` column says \"converted with estargz-ref\", each blob is")
    w("`ref/lossless-python-ustar-c1024.esgz` (the *base*: `tars/valid/python-ustar.tar`, chunk 1024, so")
    w("`pydir/text.txt` (3000 B) has chunks at 0, 1024, 2048) transformed in Python; where the TOC was")
    w("rewritten it is Go-`MarshalIndent`-encoded, put in a Go-style TOC tar and gzip member and")
    w("re-footered with the right TOC offset, so the named defect is the only one. The tar-level cases")
    w("(hardlinks, child of a regular file) edit the fixture tar and let the reference convert it, so")
    w("TOC and payload agree. Sidecar: `expect` (what a correct reader/verifier must report: an error,")
    w("never a panic/abort), `what`, `how`, `base`, and `toc_digest`, the digest the blob should be")
    w("checked against where meaningful (for `tampered-toc` the ORIGINAL digest; `actual_toc_digest`")
    w("is that of the stored TOC).")
    w("")
    w("Two reference runs per blob: *with sidecar digest* = `verify -toc-digest <toc_digest>` (plain")
    w("`verify` where the sidecar has none), *own digest* = plain `verify`, i.e. against the TOC digest")
    w("the reference computes itself; the second shows whether the reference notices the defect at all.")
    w("")
    w("| blob | defect | a correct reader/verifier must report | how | reference verify, sidecar digest | reference verify, own digest |")
    w("|---|---|---|---|---|---|")
    bad = load("bad")
    for fn, s in bad:
        own = ver(s, "bad", "reference_verify_own_digest") if "toc_digest" in s else "(same run)"
        w("| `%s` | %s | %s | %s | %s | %s |" % (fn, md(s["what"]), md(s["expect"]), md(s["how"]),
                                                ver(s, "bad"), own))
    w("")
    w("### What the reference (v0.12.0) does with bad/")
    w("")

    def verdict(s):
        v = s.get("reference_verify_own_digest") or s.get("reference_verify")
        return classify("bad", v["exit"], v["first_line"]) if v else "not run"
    groups = {}
    for fn, s in bad:
        groups.setdefault(verdict(s).replace("*", ""), []).append(fn[:-5])
    for k in sorted(groups):
        w("* %s: %s" % (k, ", ".join("`%s`" % x for x in groups[k])))
    w("")
    w("(Judged on the own-digest run.) \"Rejects\" does not always mean the defect was recognised:")
    w("`offsets-decreasing` fails inside a read (`bufio: negative count`), `negative-offset` and")
    w("`offset-past-toc` only through reads, `toc-offset-negative` through a failed TOC read,")
    w("`entries-null-with-payload` through the empty-layer gap (`no root`), and `tampered-toc` with")
    w("its own digest fails on the chunk, as it should. Defects the reference never checks (spec 5.7):")
    w("offset order/range, chunk gaps/overlaps, sizes, types, version, TOC CRC/length, TOC size,")
    w("trailing data, hardlinks to directories, children of non-directories, offset sign prefixes.")
    w("")
    w("## hostile/ - unpack-escape blobs")
    w("")
    w("Tars written with Python `tarfile` (USTAR) and converted by `estargz-ref lossless`, so the TOC")
    w("and payload agree and the names/targets are stored raw. A safe unpacker given any target dir")
    w("must create **nothing outside the target dir** (reject or neutralise the entry), and must not")
    w("follow a symlink created by the archive out of the target. `tar_sha256` is the sha256 of the")
    w("source tar = expected output of a lossless `unpack` to tar.")
    w("")
    w("| blob | entries (`->` symlink, `=>` hardlink) | attack | reference verify |")
    w("|---|---|---|---|")
    for fn, s in load("hostile"):
        w("| `%s` | %s | %s | %s |" % (fn, md(", ".join("`%s`" % e for e in s["entries"])), md(s["what"]),
                                       ver(s, "hostile")))
    w("")
    w("## control/ - valid blobs rewritten by make_blobs.py")
    w("")
    w("Controls for the rewriting code: these must open and verify. They show that a bad/ blob fails")
    w("because of its defect, not because of how make_blobs.py writes TOC members and footers.")
    w("")
    w("| blob | what | expect | reference verify |")
    w("|---|---|---|---|")
    for fn, s in load("control"):
        w("| `%s` | %s | %s | %s |" % (fn, md(s["what"]), md(s["expect"]), ver(s, "control")))
    w("")
    with open(os.path.join(root, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(L))
    print("README.md written")


def main(argv):
    if not argv:
        sys.exit(__doc__)
    cmd, a = argv[0], argv[1:]
    {
        "selftest": cmd_selftest,
        "ref-sidecar": cmd_ref_sidecar,
        "bad": cmd_bad,
        "hostile": cmd_hostile,
        "control": cmd_control,
        "record": cmd_record,
        "readme": cmd_readme,
    }[cmd](*a)


if __name__ == "__main__":
    main(sys.argv[1:])
