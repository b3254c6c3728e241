//! Small tars for tests that need a few files and directories.

/// A tar of `(name, data)` files (mode 0644) and `(name/)` directories
/// (mode 0755), in the order given.
pub fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_ustar();
        if let Some(dir) = name.strip_suffix('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            h.set_cksum();
            tar.append_data(&mut h, dir, &b""[..]).unwrap();
        } else {
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            h.set_cksum();
            tar.append_data(&mut h, name, *data).unwrap();
        }
    }
    tar.into_inner().unwrap()
}
