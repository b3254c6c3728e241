//! Any CPU: the `sha2` crate's block function, one lane at a time.

use sha2::digest::generic_array::GenericArray;

/// Runs `state` over `blocks`, whole 64-byte blocks.
pub(crate) fn compress(state: &mut [u32; 8], blocks: &[u8]) {
    // sha2 0.10 wants `&[GenericArray]`, which safe code can only make one block at a time.
    for block in blocks.chunks_exact(super::BLOCK) {
        sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
    }
}
