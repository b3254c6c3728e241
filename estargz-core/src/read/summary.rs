//! What a TOC and its index hold, counted and summarised for the tools
//! that describe a blob (`estargz info`, `estargz ls`): which entries carry
//! data, how a file's chunks follow it, what the landmark says.

use super::index::{owner_names, parse_rfc3339, Index, NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK};
use crate::toc::{format_modtime, EntryType, Toc, TocEntry};
use std::collections::BTreeMap;

impl TocEntry {
    /// Whether the entry stands for a piece of file data: a `chunk`, or a
    /// `reg` entry with bytes (it is its file's first chunk). An empty
    /// file has no data entry.
    pub fn is_data(&self) -> bool {
        self.kind == EntryType::Chunk || (self.kind == EntryType::Reg && self.size > 0)
    }
}

/// A TOC entry other than a `chunk`, with the data entries that are its
/// file's chunks and its owners' names (see [`Toc::listing`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ListedEntry<'a> {
    /// Position of the entry in the TOC.
    pub toc_index: usize,
    /// The entry.
    pub entry: &'a TocEntry,
    /// Its data entries: itself when it is a non-empty `reg`, and the
    /// `chunk` entries right after it.
    pub chunks: usize,
    /// Owner name, with the writer's de-duplication undone (spec §3.7): an
    /// entry without one has the name last given to its uid.
    pub user: String,
    /// Group name, likewise.
    pub group: String,
}

impl ListedEntry<'_> {
    /// The modification time in UTC to the second
    /// (`2020-01-02T03:04:06Z`), as a listing shows it; `None` when the
    /// TOC's `modtime` is not RFC 3339.
    pub fn modtime(&self) -> Option<String> {
        parse_rfc3339(&self.entry.modtime).map(|t| format_modtime(t, 0))
    }
}

impl Toc {
    /// Entries per type name (`reg`, `dir`, `chunk`, ...).
    pub fn kind_counts(&self) -> BTreeMap<&str, usize> {
        let mut kinds = BTreeMap::new();
        for e in &self.entries {
            *kinds.entry(e.kind.as_str()).or_default() += 1;
        }
        kinds
    }

    /// Entries that stand for file data ([`TocEntry::is_data`]).
    pub fn data_entries(&self) -> usize {
        self.entries.iter().filter(|e| e.is_data()).count()
    }

    /// The entries in TOC order with each file's `chunk` entries folded
    /// into it, as `tar -t` would list the layer.
    pub fn listing(&self) -> impl Iterator<Item = ListedEntry<'_>> {
        let mut owners = owner_names(self).into_iter();
        self.entries
            .iter()
            .enumerate()
            .filter_map(move |(i, e)| {
                let (user, group) = owners.next().unwrap_or_default();
                (e.kind != EntryType::Chunk).then_some((i, e, user, group))
            })
            .map(|(i, e, user, group)| ListedEntry {
                toc_index: i,
                entry: e,
                chunks: usize::from(e.is_data())
                    + self.entries[i + 1..]
                        .iter()
                        .take_while(|c| c.kind == EntryType::Chunk)
                        .count(),
                user,
                group,
            })
    }
}

/// What a blob's landmark says about prefetching (spec §4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefetch {
    /// `.prefetch.landmark`: the blob's bytes before `end` (the landmark's
    /// data offset) are worth fetching first.
    Until {
        /// End of the prefetch range.
        end: u64,
    },
    /// `.no.prefetch.landmark`: there is nothing to prefetch.
    Nothing,
}

impl Prefetch {
    /// The landmark's entry name.
    pub fn landmark(self) -> &'static str {
        match self {
            Prefetch::Until { .. } => PREFETCH_LANDMARK,
            Prefetch::Nothing => NO_PREFETCH_LANDMARK,
        }
    }
}

impl Index {
    /// The landmark's word on prefetching; `None` without a landmark. A
    /// `.prefetch.landmark` with no data does not count as one.
    pub fn prefetch(&self) -> Option<Prefetch> {
        match self.prefetch_end() {
            Some(end) => Some(Prefetch::Until { end }),
            None if self.has_no_prefetch_landmark() => Some(Prefetch::Nothing),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: EntryType, size: i64) -> TocEntry {
        TocEntry {
            size,
            ..TocEntry::new("f", kind)
        }
    }

    #[test]
    fn chunks_fold_into_their_file() {
        let toc = Toc {
            entries: vec![
                entry(EntryType::Dir, 0),
                entry(EntryType::Reg, 0),
                entry(EntryType::Reg, 10),
                entry(EntryType::Chunk, 0),
                entry(EntryType::Chunk, 0),
                entry(EntryType::Symlink, 0),
            ],
            ..Toc::default()
        };
        assert_eq!(toc.data_entries(), 3);
        let listed: Vec<(usize, usize)> = toc.listing().map(|l| (l.toc_index, l.chunks)).collect();
        assert_eq!(listed, [(0, 0), (1, 0), (2, 3), (5, 0)]);
        let kinds = toc.kind_counts();
        assert_eq!(kinds["reg"], 2);
        assert_eq!(kinds["chunk"], 2);
        assert_eq!(kinds.len(), 4);
    }
}
