//! `oci:DIR:REF`: one image of a layout picked by its reference name, and
//! the name the converted image is given, as skopeo reads and writes them
//! (the `org.opencontainers.image.ref.name` annotation of `index.json`).

use crate::error::{invalid, Result};
use crate::oci::{ImageIndex, ANNOTATION_REF_NAME};

fn ref_name(desc: &crate::oci::Descriptor) -> Option<&str> {
    desc.annotations
        .as_ref()?
        .get(ANNOTATION_REF_NAME)
        .map(String::as_str)
}

/// The entries of `index` named `name`; an error naming the names there are
/// when none is.
pub(crate) fn select(index: &ImageIndex, name: &str, index_name: &str) -> Result<ImageIndex> {
    let mut selected = index.clone();
    selected.manifests.retain(|m| ref_name(m) == Some(name));
    if selected.manifests.is_empty() {
        let mut names: Vec<&str> = index.manifests.iter().filter_map(ref_name).collect();
        names.sort_unstable();
        names.dedup();
        let there = match names.is_empty() {
            true => "it names no image".to_string(),
            false => format!("it names {}", names.join(", ")),
        };
        return Err(invalid(
            index_name,
            format!("no image named {name:?}: {there}"),
        ));
    }
    Ok(selected)
}

/// Names the one image of `index` `name`, replacing the name it had.
pub(crate) fn name_as(index: &mut ImageIndex, name: &str, index_name: &str) -> Result<()> {
    let [only] = &mut index.manifests[..] else {
        let n = index.manifests.len();
        return Err(invalid(
            index_name,
            format!("{n} images, but a destination reference names one: pick one with SRC's :REF"),
        ));
    };
    only.annotations
        .get_or_insert_with(Default::default)
        .insert(ANNOTATION_REF_NAME.to_string(), name.to_string());
    Ok(())
}
