//! Where inputs come from: paths, `-` for stdin, and blobs opened for random access.

use anyhow::{Context, Result};
use estargz_core::read::{Blob, OpenOptions};
use std::fs::File;
use std::io::{self, Read};

/// An input named on the command line: a path or `-` for stdin.
pub fn open_input(name: &str) -> Result<Box<dyn Read + Send>> {
    if name == "-" {
        return Ok(Box::new(io::stdin()));
    }
    let file = File::open(name).with_context(|| format!("cannot open {name}"))?;
    Ok(Box::new(file))
}

/// A blob file, for positioned reads.
pub fn open_blob_file(path: &str) -> Result<File> {
    File::open(path).with_context(|| format!("cannot open {path}"))
}

/// A blob opened through its footer and TOC.
pub fn open_blob(path: &str) -> Result<Blob<File>> {
    let file = open_blob_file(path)?;
    Blob::open(file, &OpenOptions::default()).with_context(|| format!("opening {path}"))
}
