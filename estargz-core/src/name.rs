//! Entry name normalisation (spec §5.3).

/// The reader's cleaned form of a TOC or tar name: Go's
/// `strings.TrimPrefix(path.Clean("/"+name), "/")`. `./foo/` becomes `foo`,
/// `/` becomes `""` (the root) and `../../etc/passwd` becomes `etc/passwd`.
///
/// ```
/// use estargz_core::internals::clean;
/// assert_eq!(clean("./foo//bar/"), "foo/bar");
/// assert_eq!(clean("../../etc/passwd"), "etc/passwd");
/// assert_eq!(clean("/"), "");
/// ```
pub fn clean(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for segment in name.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn cleans_like_go_path_clean() {
        for (raw, want) in [
            ("foo", "foo"),
            ("./foo/", "foo"),
            ("/foo/./bar", "foo/bar"),
            ("a/../b", "b"),
            ("a/b/../../..", ""),
            ("", ""),
            (".", ""),
            ("./stargz.index.json", "stargz.index.json"),
            ("x/../stargz.index.json", "stargz.index.json"),
            ("...", "..."),
        ] {
            assert_eq!(clean(raw), want, "{raw:?}");
        }
    }
}
