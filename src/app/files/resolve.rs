//! Path safety: turning the raw tail of a request path into a file below the root, or
//! refusing it.
//!
//! The rule is simple and strict: every segment is percent-decoded exactly once, and a
//! segment that then holds anything that could change which folder we are in (`/`, `\`,
//! NUL or another control character, a `%` left over from double encoding, or a `:` that
//! could name a drive or a stream on Windows), or that is empty, `.` or `..`, makes the
//! whole request a 404. RFC 3986 §6.2.2.3 would have a client remove dot segments before
//! sending; a request that still holds them is not one a browser makes, so it is refused,
//! not normalised. The segments that pass are joined onto the root, and the file found is
//! canonicalized (symlinks resolved) and must still lie below the canonical root, so a
//! symlink pointing out of the folder is refused too.

use std::io;
use std::path::{Component, Path, PathBuf};

use percent_encoding::percent_decode_str;

/// Why a path was refused: a request that tries to leave the root (or is malformed).
#[derive(Debug, PartialEq, Eq)]
pub struct Refused;

/// Decodes one raw segment and checks it names a plain entry of a folder.
pub fn decode_segment(raw: &str) -> Result<String, Refused> {
    let decoded = percent_decode_str(raw).decode_utf8().map_err(|_| Refused)?;
    let forbidden = |c: char| c == '/' || c == '\\' || c == '%' || c == ':' || c.is_control();
    if decoded.is_empty() || decoded == "." || decoded == ".." || decoded.contains(forbidden) {
        return Err(Refused);
    }
    // Whatever the platform's own rules are, the segment must be one normal component.
    let mut components = Path::new(&*decoded).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(_)), None) => Ok(decoded.into_owned()),
        _ => Err(Refused),
    }
}

/// The relative path named by the raw (still percent-encoded) segments, checked one by one.
pub fn relative_path<'a>(
    raw_segments: impl IntoIterator<Item = &'a str>,
) -> Result<PathBuf, Refused> {
    let mut path = PathBuf::new();
    for raw in raw_segments {
        path.push(decode_segment(raw)?);
    }
    Ok(path)
}

/// A page name given to the router (`index_page`, `fallback_page`): `/`-separated plain
/// segments, not percent-encoded, checked by the same rule as requests.
pub fn page_path(page: &str) -> Result<PathBuf, Refused> {
    let mut path = PathBuf::new();
    for segment in page.split('/') {
        if segment.contains('%') {
            return Err(Refused);
        }
        path.push(decode_segment(segment)?);
    }
    Ok(path)
}

/// What the filesystem says about a candidate path.
#[derive(Debug)]
pub enum Found {
    /// A regular file, by its canonical path.
    File(PathBuf),
    /// A folder, by its canonical path.
    Folder(PathBuf),
    /// Nothing there (or something that is neither a regular file nor a folder, or a path
    /// that resolves outside the root).
    Nothing,
}

/// Looks `candidate` up and makes sure it resolves below `root` (which is canonical).
/// Errors other than "not found" (permission, I/O) are returned for a 403 or 500.
pub fn look_up(root: &Path, candidate: &Path) -> io::Result<Found> {
    if let Some(found) = look_up_plain(root, candidate)? {
        return Ok(found);
    }
    let canonical = match std::fs::canonicalize(candidate) {
        Ok(canonical) => canonical,
        Err(error) if is_missing(&error) => return Ok(Found::Nothing),
        Err(error) => return Err(error),
    };
    if !canonical.starts_with(root) {
        return Ok(Found::Nothing);
    }
    let metadata = match std::fs::metadata(&canonical) {
        Ok(metadata) => metadata,
        Err(error) if is_missing(&error) => return Ok(Found::Nothing),
        Err(error) => return Err(error),
    };
    Ok(classify(canonical, &metadata))
}

/// The fast path of `look_up`: walks from the canonical root one `lstat` per segment. When
/// no segment is a symlink, the candidate is already canonical and below the root, and the
/// last `lstat` tells what it is: a file one folder down costs one call, where `realpath`
/// would read every component of the root's own path again. `None` as soon as a symlink
/// (or anything unusual) appears: the full canonicalization decides then.
fn look_up_plain(root: &Path, candidate: &Path) -> io::Result<Option<Found>> {
    let Ok(relative) = candidate.strip_prefix(root) else {
        return Ok(None);
    };
    let mut current = root.to_path_buf();
    let mut last = None;
    for component in relative.components() {
        let Component::Normal(name) = component else {
            return Ok(None);
        };
        current.push(name);
        match std::fs::symlink_metadata(&current) {
            Ok(metadata) if metadata.file_type().is_symlink() => return Ok(None),
            Ok(metadata) => last = Some(metadata),
            Err(error) if is_missing(&error) => return Ok(Some(Found::Nothing)),
            Err(error) => return Err(error),
        }
    }
    Ok(last.map(|metadata| classify(current, &metadata)))
}

fn classify(path: PathBuf, metadata: &std::fs::Metadata) -> Found {
    if metadata.is_dir() {
        Found::Folder(path)
    } else if metadata.is_file() {
        Found::File(path)
    } else {
        Found::Nothing
    }
}

/// "Not there": missing, or a file used as a folder (`a.txt/b`).
pub fn is_missing(error: &io::Error) -> bool {
    if matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    ) {
        return true;
    }
    // A name too long or a symlink loop: no file a client may have.
    #[cfg(unix)]
    if matches!(
        error.raw_os_error(),
        Some(libc::ENOTDIR | libc::ENAMETOOLONG | libc::ELOOP)
    ) {
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_segments_pass() {
        assert_eq!(
            relative_path(["css", "a.css"]).unwrap(),
            PathBuf::from("css/a.css")
        );
        assert_eq!(
            relative_path(["caf%C3%A9.txt"]).unwrap(),
            PathBuf::from("café.txt")
        );
        assert_eq!(relative_path(["a%20b"]).unwrap(), PathBuf::from("a b"));
        assert_eq!(relative_path(["..."]).unwrap(), PathBuf::from("..."));
        assert_eq!(
            relative_path([".well-known"]).unwrap(),
            PathBuf::from(".well-known")
        );
        assert_eq!(relative_path(std::iter::empty()).unwrap(), PathBuf::new());
    }

    #[test]
    fn traversal_spellings_are_refused() {
        let spellings = [
            "..",
            ".",
            "%2e%2e",
            "%2E%2E",
            ".%2e",
            "%2e.",
            "%2e",
            "..%2fetc",
            "%2f",
            "a%2fb",
            "%5c",
            "..%5c..",
            "a\\b",
            "%00",
            "a%00.txt",
            "%252e%252e",
            "%25",
            "%c0%ae%c0%ae",
            "",
            "C:",
            "c%3a",
            "%0a",
            "%7f",
        ];
        for spelling in spellings {
            assert_eq!(relative_path([spelling]), Err(Refused), "{spelling}");
        }
        assert_eq!(relative_path(["a", "..", "b"]), Err(Refused));
    }

    #[test]
    fn page_names() {
        assert_eq!(
            page_path("index.html").unwrap(),
            PathBuf::from("index.html")
        );
        assert_eq!(
            page_path("app/index.html").unwrap(),
            PathBuf::from("app/index.html")
        );
        for bad in ["", "/etc/passwd", "../x", "a//b", "a/./b", "a%2e"] {
            assert!(page_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn symlinks_out_of_the_root_are_nothing() {
        let base = std::env::temp_dir().join(format!("godottpd-resolve-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(base.join("secret.txt"), b"secret").unwrap();
        std::fs::write(root.join("sub/inside.txt"), b"ok").unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        #[cfg(unix)]
        {
            let _ = std::os::unix::fs::symlink(base.join("secret.txt"), root.join("out.txt"));
            let _ = std::os::unix::fs::symlink(root.join("sub/inside.txt"), root.join("in.txt"));
            assert!(matches!(
                look_up(&root, &root.join("out.txt")).unwrap(),
                Found::Nothing
            ));
            assert!(matches!(
                look_up(&root, &root.join("in.txt")).unwrap(),
                Found::File(_)
            ));
            // A symlinked folder in the middle of the path: the fast path steps aside and
            // realpath decides, inside (served, by its canonical path) or out (nothing).
            let _ = std::os::unix::fs::symlink(root.join("sub"), root.join("alias"));
            let _ = std::os::unix::fs::symlink(&base, root.join("up"));
            assert!(matches!(
                look_up(&root, &root.join("alias/inside.txt")).unwrap(),
                Found::File(path) if path == root.join("sub/inside.txt")
            ));
            assert!(matches!(
                look_up(&root, &root.join("up/secret.txt")).unwrap(),
                Found::Nothing
            ));
            assert!(matches!(
                look_up_plain(&root, &root.join("alias/inside.txt")),
                Ok(None)
            ));
        }
        // No symlink: the fast path answers alone, with the path as it is.
        assert!(matches!(
            look_up_plain(&root, &root.join("sub/inside.txt")),
            Ok(Some(Found::File(path))) if path == root.join("sub/inside.txt")
        ));
        assert!(matches!(
            look_up(&root, &root.join("sub")).unwrap(),
            Found::Folder(_)
        ));
        assert!(matches!(
            look_up(&root, &root.join("missing")).unwrap(),
            Found::Nothing
        ));
        assert!(matches!(
            look_up(&root, &root.join("sub/inside.txt/x")).unwrap(),
            Found::Nothing
        ));
        let _ = std::fs::remove_dir_all(&base);
    }
}
