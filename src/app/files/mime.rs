//! The `Content-Type` of a served file: `mime_guess`'s table, with the few entries fixed
//! where it is wrong or silent for what Godot web exports and modern sites ship.

use std::borrow::Cow;
use std::path::Path;

/// Extensions whose type `mime_guess` gets wrong or does not know.
///
/// - `wasm`: `WebAssembly.instantiateStreaming` refuses anything but `application/wasm`.
/// - `js`, `mjs`: RFC 9239 §3 makes `text/javascript` the one type to use.
/// - `pck`: a Godot resource pack, opaque bytes.
const OVERRIDES: &[(&str, &str)] = &[
    ("wasm", "application/wasm"),
    ("js", "text/javascript"),
    ("mjs", "text/javascript"),
    ("pck", "application/octet-stream"),
];

/// Types whose content is text, so they get `; charset=utf-8`.
fn is_text(essence: &str) -> bool {
    essence.starts_with("text/")
        || matches!(
            essence,
            "application/json" | "application/xml" | "image/svg+xml" | "application/manifest+json"
        )
}

/// The full `Content-Type` value for a file named `path`.
pub fn content_type(path: &Path) -> Cow<'static, str> {
    let extension = path
        .extension()
        .and_then(|extension| extension.to_str())
        .map(str::to_ascii_lowercase);
    let overridden = extension.as_deref().and_then(|extension| {
        OVERRIDES
            .iter()
            .find(|(known, _)| *known == extension)
            .map(|(_, mime)| *mime)
    });
    let essence: Cow<'static, str> = match overridden {
        Some(mime) => Cow::Borrowed(mime),
        None => match mime_guess::from_path(path).first() {
            Some(mime) => Cow::Owned(mime.essence_str().to_owned()),
            None => Cow::Borrowed("application/octet-stream"),
        },
    };
    if is_text(&essence) {
        Cow::Owned(format!("{essence}; charset=utf-8"))
    } else {
        essence
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(name: &str) -> String {
        content_type(Path::new(name)).into_owned()
    }

    #[test]
    fn overrides() {
        assert_eq!(of("a.wasm"), "application/wasm");
        assert_eq!(of("A.WASM"), "application/wasm");
        assert_eq!(of("a.mjs"), "text/javascript; charset=utf-8");
        assert_eq!(of("a.js"), "text/javascript; charset=utf-8");
        assert_eq!(of("game.pck"), "application/octet-stream");
    }

    #[test]
    fn table() {
        assert_eq!(of("index.html"), "text/html; charset=utf-8");
        assert_eq!(of("a.css"), "text/css; charset=utf-8");
        assert_eq!(of("a.json"), "application/json; charset=utf-8");
        assert_eq!(of("a.jpeg"), "image/jpeg");
        assert_eq!(of("a.png"), "image/png");
        assert_eq!(of("a.mp4"), "video/mp4");
        assert_eq!(of("a.webm"), "video/webm");
        assert_eq!(of("a.svg"), "image/svg+xml; charset=utf-8");
        assert_eq!(of("noextension"), "application/octet-stream");
        assert_eq!(of("a.unknownext"), "application/octet-stream");
    }
}
