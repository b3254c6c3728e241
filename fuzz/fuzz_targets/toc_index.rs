//! serde_json::from_slice::<Toc> on arbitrary bytes, then Index::build with
//! small limits and a walk over everything the index offers.
#![no_main]
use estargz_core::internals::owner_names;
use estargz_core::{Index, Toc};
use estargz_fuzz::small_index_limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(toc) = serde_json::from_slice::<Toc>(data) else {
        return;
    };
    let _ = toc.to_json();
    let _ = owner_names(&toc);
    for payload_end in [data.len() as u64, 1 << 20, u64::MAX] {
        let Ok(index) = Index::build(&toc, payload_end, &small_index_limits()) else {
            continue;
        };
        let _ = (index.len(), index.is_empty(), index.payload_end());
        let _ = (index.prefetch_end(), index.has_no_prefetch_landmark());
        let _ = index.hardlinks().len();
        let _ = index.root();
        for (path, node) in index.walk() {
            let _ = index.lookup(&path);
            let _ = index.lookup_id(&path);
            let _ = index.children(node).count();
            let _ = node.permissions();
            let _ = node.chunk_for_offset(0);
            let _ = node.chunk_for_offset(node.size().saturating_sub(1));
            let _ = node.chunk_for_offset(node.size());
        }
        for node in index.files() {
            let _ = index.lookup(node.name());
        }
    }
});
