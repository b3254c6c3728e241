#!/usr/bin/env python3
"""Python half of testdata/blobs/zstd/make-zstd-blobs.sh.

Sub-commands (standard library only, deterministic output):

  small-tar OUT            the `small.tar` of docs zstd-chunked-format.md §3.6
                           (sha256 52359fbe...a541)
  mixed-tar OUT            a small PAX tar with a dir, xattrs, an empty file, a
                           ~160 KB text file (several rolling-sum chunks), a file
                           with a 3000-byte zero run (a `zeros` chunk), a symlink, a
                           hardlink and a fractional mtime, padded to 10,240 bytes
  oci-layout TAR DIR       an OCI layout holding TAR as its one uncompressed layer
                           (tag `latest`), for skopeo
  oci-layer DIR OUT SIDE   copy the single layer of the OCI layout DIR to OUT and
                           write its descriptor (media type, digest, annotations) to SIDE
  sidecar OUT KEY=VALUE... write a JSON sidecar; values that parse as JSON are kept
                           as JSON, others as strings
"""

import hashlib
import io
import json
import os
import shutil
import sys
import tarfile

MTIME = 1577934245


def add(t, name, typ, data=b"", mode=0o644, **kw):
    ti = tarfile.TarInfo(name)
    ti.type = typ
    ti.mode = mode
    ti.uid, ti.gid = kw.pop("ids", (1000, 1000))
    ti.uname, ti.gname = kw.pop("names", ("alice", "staff"))
    ti.mtime = kw.pop("mtime", MTIME)
    ti.size = len(data)
    ti.linkname = kw.pop("linkname", "")
    ti.pax_headers = kw.pop("pax", {})
    assert not kw, kw
    t.addfile(ti, io.BytesIO(data) if data else None)


def small_tar(out):
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as t:
        add(t, "foo", tarfile.DIRTYPE, mode=0o755)
        add(t, "foo/bar.txt", tarfile.REGTYPE, b"Some contents")


def text(size):
    words = [b"alpha", b"bravo", b"charlie", b"delta", b"echo", b"foxtrot", b"golf",
             b"hotel", b"india", b"juliet", b"kilo", b"lima", b"mike", b"november"]
    out, n = bytearray(), 0
    while len(out) < size:
        h = hashlib.sha256(b"%d" % n).digest()
        out += b" ".join(words[b % len(words)] for b in h[:9]) + b" %d\n" % n
        n += 1
    return bytes(out[:size])


def mixed_tar(out):
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
        add(t, "mixed", tarfile.DIRTYPE, mode=0o755)
        add(t, "mixed/xattr.txt", tarfile.REGTYPE, b"has xattrs\n",
            pax={"SCHILY.xattr.user.comment": "hello", "SCHILY.xattr.user.bin": "\x01\x02"})
        add(t, "mixed/empty", tarfile.REGTYPE)
        add(t, "mixed/text.txt", tarfile.REGTYPE, text(160_000))
        add(t, "mixed/holes.bin", tarfile.REGTYPE, text(4000) + b"\0" * 3000 + text(4000))
        add(t, "mixed/frac.txt", tarfile.REGTYPE, b"fraction\n", mtime=MTIME + 0.6)
        add(t, "mixed/link", tarfile.SYMTYPE, linkname="text.txt", mode=0o777)
        add(t, "mixed/hard", tarfile.LNKTYPE, linkname="mixed/text.txt")


def put_blob(root, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(root, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)


def oci_layout(tar, out):
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "blobs", "sha256"))
    layer = open(tar, "rb").read()
    ld, ls = put_blob(out, layer)
    cfg = {"architecture": "amd64", "os": "linux", "config": {},
           "rootfs": {"type": "layers", "diff_ids": [ld]}}
    cd, cs = put_blob(out, json.dumps(cfg, sort_keys=True).encode())
    man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                      "digest": cd, "size": cs},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                       "digest": ld, "size": ls}]}
    md, ms = put_blob(out, json.dumps(man, sort_keys=True).encode())
    with open(os.path.join(out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f)


def oci_layer(layout, out, side):
    blob = lambda d: os.path.join(layout, "blobs", "sha256", d.split(":", 1)[1])
    index = json.load(open(os.path.join(layout, "index.json")))
    man = json.load(open(blob(index["manifests"][0]["digest"])))
    [layer] = man["layers"]
    shutil.copyfile(blob(layer["digest"]), out)
    with open(side, "w") as f:
        json.dump(layer, f, indent=2, sort_keys=True)
        f.write("\n")


def sidecar(out, pairs):
    doc = {}
    for p in pairs:
        k, v = p.split("=", 1)
        try:
            doc[k] = json.loads(v)
        except ValueError:
            doc[k] = v
    with open(out, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "small-tar":
        small_tar(*args)
    elif cmd == "mixed-tar":
        mixed_tar(*args)
    elif cmd == "oci-layout":
        oci_layout(*args)
    elif cmd == "oci-layer":
        oci_layer(*args)
    elif cmd == "sidecar":
        sidecar(args[0], args[1:])
    else:
        raise SystemExit("unknown sub-command %r" % cmd)


if __name__ == "__main__":
    main(sys.argv)
