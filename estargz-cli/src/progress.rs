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

/// One line per item (a layer of convert-image), each updated in place as
/// its state changes; drawn only when stderr is a terminal and neither
/// `--quiet` nor `--json` was given.
pub struct Lines {
    multi: Option<indicatif::MultiProgress>,
    lines: std::sync::Mutex<std::collections::HashMap<String, ProgressBar>>,
}

impl Lines {
    /// Lines on stderr, or nothing when `hidden` or stderr is not a terminal.
    pub fn new(hidden: bool) -> Lines {
        let multi = (!hidden && std::io::stderr().is_terminal())
            .then(|| indicatif::MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Lines {
            multi,
            lines: Default::default(),
        }
    }

    /// Whether lines are drawn.
    pub fn shown(&self) -> bool {
        self.multi.is_some()
    }

    /// Sets the line of `key` to `text`, adding it below the others the
    /// first time.
    pub fn set(&self, key: &str, text: String) {
        let Some(multi) = &self.multi else {
            return;
        };
        let Ok(mut lines) = self.lines.lock() else {
            return;
        };
        let bar = lines.entry(key.to_string()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar
        });
        bar.set_message(text);
        bar.tick();
    }

    /// Leaves every line as it is on the screen.
    pub fn finish(&self) {
        if let Ok(lines) = self.lines.lock() {
            for bar in lines.values() {
                bar.finish();
            }
        }
    }
}
