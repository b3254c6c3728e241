//! Progress on stderr for long jobs, shown only when stderr is a terminal
//! and `--quiet` was not given: logs and pipes stay byte-for-byte
//! predictable.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Read};

/// A progress bar counting bytes, or nothing when it should not be drawn.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar for `total` bytes (a spinner when the total is unknown, as for
    /// stdin), labelled `what`; hidden when `quiet` or stderr is not a terminal.
    pub fn bytes(what: &str, total: Option<u64>, quiet: bool) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = match total {
            Some(len) => ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
                .with_style(
                    ProgressStyle::with_template("{msg} [{wide_bar}] {bytes}/{total_bytes} {eta}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template("{msg} {spinner} {bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.set_message(what.to_string());
        Progress { bar: Some(bar) }
    }

    /// `reader`, counting what is read from it into the bar.
    pub fn reader<R: Read>(&self, reader: R) -> CountingReader<R> {
        CountingReader {
            inner: reader,
            bar: self.bar.clone(),
        }
    }

    /// The bar itself, for progress that is not read through a reader.
    pub fn bar(&self) -> Option<ProgressBar> {
        self.bar.clone()
    }

    /// Removes the bar, so that the summary lines that follow stand alone.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A reader that advances a progress bar.
pub struct CountingReader<R> {
    inner: R,
    bar: Option<ProgressBar>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }
}
