//! Where the system tools the harnesses start are.

use std::path::PathBuf;

/// `$ENV` when set, else `name` on PATH, else in one of `dirs` (Debian puts
/// some daemons in sbin directories that are often not on PATH).
pub(crate) fn find_tool(env: &str, name: &str, dirs: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(dirs.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
