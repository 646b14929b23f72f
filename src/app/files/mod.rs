//! `HttpFileRouter`: a folder served entirely in Rust, with no Python call per request.
//!
//! A request routed here is answered on the connection's I/O thread, as nginx answers in
//! its event loop: `canonicalize`, `metadata` and `open` take microseconds on a local disk,
//! less than a hand-off to a blocking pool and back (on a slow network filesystem, give the
//! server more `io_threads`). The body is not read here: the open file goes back to the
//! connection, which streams it with `sendfile(2)` (see `sendfile.rs`).
//!
//! Submodules, one concern each: `resolve` (no path may leave the root), `conditional`
//! (validators, 304, ranges, content codings) and `mime` (content types).

pub mod conditional;
pub mod mime;
pub mod resolve;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::app::exchange::{FileBody, Outgoing};
use bytes::Bytes;

use crate::app::answer::ServerAnswer;
use crate::http::encode::{HeadEncoder, Persistence};
use crate::http::parse::RequestHead;
use conditional::{
    accepts, if_range_holds, not_modified, parse_range, Coding, RangeRequest, Validators,
};
use resolve::{look_up, Found};

/// The header lines that make a page cross-origin isolated (HTML standard §7.1.3), so that
/// `SharedArrayBuffer`, and with it a threaded Godot web export, is available.
const CROSS_ORIGIN_ISOLATION: &[u8] = b"Cross-Origin-Opener-Policy: same-origin\r\n\
Cross-Origin-Embedder-Policy: require-corp\r\n\
Cross-Origin-Resource-Policy: same-origin\r\n";

/// A file router's settings, shared by every request it answers.
#[derive(Debug)]
pub struct FileRoute {
    /// The served folder, canonical (symlinks resolved), so that a canonical file path
    /// below it starts with it.
    root: PathBuf,
    index_page: PathBuf,
    fallback_page: Option<PathBuf>,
    /// The fallback page is the index page: served with 200, not 404.
    fallback_is_index: bool,
    /// Lowercase, without the dot.
    extensions: Vec<String>,
    exclude_extensions: Vec<String>,
    /// Header lines added to every answer of this router (cross-origin isolation,
    /// `Cache-Control`).
    extra_lines: Box<[u8]>,
}

/// One request for a file router, with what its answer needs.
pub struct FileRequest {
    pub head: RequestHead,
    /// The raw (still percent-encoded) segments below the router's prefix.
    pub tail: Vec<String>,
    /// The path ended in `/` (a folder is asked for as a folder).
    pub trailing_slash: bool,
    pub head_only: bool,
    pub persistence: Persistence,
    pub cors_lines: Option<Arc<[u8]>>,
    pub server_identifier: Arc<Box<str>>,
}

/// Where a request leads.
enum Located {
    File(PathBuf),
    /// A folder asked for without its trailing slash.
    Redirect,
    Nothing,
}

fn lowercase_extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|extension| extension.to_str())
        .map(str::to_ascii_lowercase)
}

impl FileRoute {
    fn excluded(&self, path: &Path) -> bool {
        lowercase_extension(path)
            .is_some_and(|extension| self.exclude_extensions.contains(&extension))
    }

    /// A regular file below the root whose extension is not excluded, or `None`.
    fn file(&self, candidate: &Path) -> io::Result<Option<PathBuf>> {
        if self.excluded(candidate) {
            return Ok(None);
        }
        match look_up(&self.root, candidate)? {
            Found::File(canonical) if !self.excluded(&canonical) => Ok(Some(canonical)),
            _ => Ok(None),
        }
    }

    /// Finds what `relative` names: the file itself, a folder's index page, or the path
    /// with one of `extensions` added when it has none.
    fn locate(&self, relative: &Path, trailing_slash: bool) -> io::Result<Located> {
        let candidate = self.root.join(relative);
        let is_root = relative.as_os_str().is_empty();
        if self.excluded(&candidate) {
            return Ok(Located::Nothing);
        }
        match look_up(&self.root, &candidate)? {
            Found::File(canonical) => {
                // `/file.txt/` names a folder that does not exist.
                if trailing_slash && !is_root || self.excluded(&canonical) {
                    return Ok(Located::Nothing);
                }
                return Ok(Located::File(canonical));
            }
            Found::Folder(folder) => {
                if !trailing_slash {
                    return Ok(Located::Redirect);
                }
                return Ok(self
                    .file(&folder.join(&self.index_page))?
                    .map_or(Located::Nothing, Located::File));
            }
            Found::Nothing => {}
        }
        if trailing_slash || is_root || candidate.extension().is_some() {
            return Ok(Located::Nothing);
        }
        let Some(name) = candidate.file_name().map(|name| name.to_os_string()) else {
            return Ok(Located::Nothing);
        };
        for extension in &self.extensions {
            let mut with_extension = name.clone();
            with_extension.push(".");
            with_extension.push(extension);
            if let Some(file) = self.file(&candidate.with_file_name(with_extension))? {
                return Ok(Located::File(file));
            }
        }
        Ok(Located::Nothing)
    }
}

/// Encodes the answers of one request.
struct FileAnswers<'a> {
    head: &'a RequestHead,
    head_only: bool,
    persistence: Persistence,
    server_identifier: &'a str,
    extra_lines: Vec<u8>,
    /// Validated header lines a handler set (`send_file`), added to a file's answer.
    handler_headers: &'a [(&'a [u8], &'a [u8])],
    /// The handler's content type, instead of the one guessed from the name.
    content_type: Option<&'a str>,
}

impl<'a> FileAnswers<'a> {
    fn new(route: &FileRoute, request: &'a FileRequest) -> Self {
        let mut extra_lines = request.cors_lines.as_deref().unwrap_or_default().to_vec();
        extra_lines.extend_from_slice(&route.extra_lines);
        FileAnswers {
            head: &request.head,
            head_only: request.head_only,
            persistence: request.persistence,
            server_identifier: &request.server_identifier,
            extra_lines,
            handler_headers: &[],
            content_type: None,
        }
    }

    /// The server's side of every answer to this request.
    fn server(&self) -> ServerAnswer<'_> {
        ServerAnswer {
            server_identifier: self.server_identifier,
            persistence: self.persistence,
            extra_lines: &self.extra_lines,
            head_only: self.head_only,
        }
    }

    /// A short plain-text answer the server writes itself.
    fn simple(&self, status: u16, headers: &[(&[u8], &[u8])], body: &str) -> Outgoing {
        self.server().text(status, headers, body.as_bytes())
    }

    fn not_found(&self) -> Outgoing {
        self.simple(404, &[], "Not found")
    }

    /// A file that exists but cannot be read: 403 when the server may not, else 500 (and
    /// never a 200 whose body is an error message).
    fn unreadable(&self, error: &io::Error) -> Outgoing {
        if resolve::is_missing(error) {
            self.not_found()
        } else if error.kind() == io::ErrorKind::PermissionDenied {
            self.simple(403, &[], "Forbidden")
        } else {
            self.simple(
                500,
                &[],
                "Internal Server Error: the file could not be read",
            )
        }
    }

    /// RFC 9110 §15.4.2: a folder asked for without its slash moves to the slash form, so
    /// that the relative links of its index page resolve. The query is kept.
    fn redirect_to_folder(&self) -> Outgoing {
        let head = self.head;
        let mut location = head.raw_path().to_vec();
        location.push(b'/');
        if head.query.is_some() {
            location.push(b'?');
            location.extend_from_slice(head.raw_query());
        }
        self.simple(301, &[(b"Location", &location)], "Moved Permanently")
    }
}

/// Answers one request for a file router, on the connection's I/O thread.
pub fn respond(route: &FileRoute, request: &FileRequest) -> Outgoing {
    let answers = FileAnswers::new(route, request);
    let Ok(relative) = resolve::relative_path(request.tail.iter().map(String::as_str)) else {
        return answers.not_found();
    };
    let located = match route.locate(&relative, request.trailing_slash) {
        Ok(located) => located,
        Err(error) => return answers.unreadable(&error),
    };
    match located {
        Located::File(path) => serve_file(Some(route), &answers, &path, 200),
        Located::Redirect => answers.redirect_to_folder(),
        Located::Nothing => {
            let fallback = match &route.fallback_page {
                Some(page) => route.file(&route.root.join(page)),
                None => Ok(None),
            };
            match fallback {
                Ok(Some(path)) => serve_file(
                    Some(route),
                    &answers,
                    &path,
                    if route.fallback_is_index { 200 } else { 404 },
                ),
                Ok(None) => answers.not_found(),
                Err(error) => answers.unreadable(&error),
            }
        }
    }
}

/// Opens a file for reading without ever blocking on a FIFO or device that replaced it
/// since it was looked up (`O_NONBLOCK` has no effect on regular files).
fn open(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

/// The precompressed sibling to send instead of `path`, if the client accepts one, and
/// whether any sibling exists (then the answer depends on `Accept-Encoding`: `Vary`, which
/// RFC 9110 §12.5.5 asks for on the identity answer too).
///
/// Existence is one `stat` per coding; the full, symlink-safe lookup runs only for the
/// sibling actually chosen, so a client that accepts no coding pays two cheap calls.
fn precompressed(
    route: &FileRoute,
    path: &Path,
    accept_encoding: Option<&[u8]>,
) -> (Option<(Coding, PathBuf)>, bool) {
    let mut chosen = None;
    let mut any = false;
    for coding in Coding::PREFERRED {
        let mut name = path.as_os_str().to_os_string();
        name.push(coding.suffix());
        if !std::fs::metadata(&name).is_ok_and(|metadata| metadata.is_file()) {
            continue;
        }
        any = true;
        if chosen.is_none() && accepts(accept_encoding, coding) {
            if let Ok(Found::File(sibling)) = look_up(&route.root, Path::new(&name)) {
                chosen = Some((coding, sibling));
            }
        }
    }
    (chosen, any)
}

/// Serves a located file with `status` (200, or 404 for a fallback page that is not the
/// index). Conditionals and ranges apply to 200 only: a 404 is never a 304 or a 206.
/// Without a route (`send_file`), no precompressed sibling is looked for.
fn serve_file(
    route: Option<&FileRoute>,
    answers: &FileAnswers<'_>,
    path: &Path,
    status: u16,
) -> Outgoing {
    let head = answers.head;
    let (chosen, vary) = match route {
        Some(route) => precompressed(route, path, head.first_header("accept-encoding")),
        None => (None, false),
    };
    let (coding, source) = match &chosen {
        Some((coding, sibling)) => (Some(*coding), sibling.as_path()),
        None => (None, path),
    };
    let file = match open(source) {
        Ok(file) => file,
        Err(error) => return answers.unreadable(&error),
    };
    // The size and time of the open file, not of the path: they belong together.
    let metadata = match file.metadata() {
        Ok(metadata) if metadata.is_file() => metadata,
        Ok(_) => return answers.not_found(),
        Err(error) => return answers.unreadable(&error),
    };
    let size = metadata.len();
    let validators = Validators::new(size, metadata.modified().ok(), coding.map(Coding::name));
    let last_modified = validators.last_modified();
    let mut headers: Vec<(&[u8], &[u8])> = vec![(b"ETag", validators.etag.as_bytes())];
    if let Some(date) = &last_modified {
        headers.push((b"Last-Modified", date.as_bytes()));
    }
    if vary {
        headers.push((b"Vary", b"Accept-Encoding"));
    }
    if status == 200
        && not_modified(
            &validators,
            head.first_header("if-none-match"),
            head.first_header("if-modified-since"),
        )
    {
        // RFC 9110 §15.4.5: a 304 carries the validators and Vary a 200 would have had.
        return encode(answers, 304, &headers, b"", 0, None);
    }
    headers.push((b"Accept-Ranges", b"bytes"));
    if let Some(coding) = coding {
        headers.push((b"Content-Encoding", coding.name().as_bytes()));
    }
    let content_type = match answers.content_type {
        Some(content_type) => std::borrow::Cow::Borrowed(content_type),
        None => mime::content_type(path),
    };
    // §14.2: Range is defined for GET only; a HEAD describes the whole representation.
    let range = match head.first_header("range") {
        Some(value)
            if status == 200
                && !answers.head_only
                && if_range_holds(&validators, head.first_header("if-range")) =>
        {
            parse_range(value, size)
        }
        _ => RangeRequest::Full,
    };
    match range {
        RangeRequest::Full => {
            let body = FileBody {
                file,
                offset: 0,
                len: size,
            };
            encode(
                answers,
                status,
                &headers,
                content_type.as_bytes(),
                size,
                Some(body),
            )
        }
        RangeRequest::Part { start, end } => {
            let content_range = format!("bytes {start}-{end}/{size}");
            headers.push((b"Content-Range", content_range.as_bytes()));
            let len = end - start + 1;
            let body = FileBody {
                file,
                offset: start,
                len,
            };
            encode(
                answers,
                206,
                &headers,
                content_type.as_bytes(),
                len,
                Some(body),
            )
        }
        RangeRequest::Unsatisfiable => {
            // §15.5.17: a 416 says how long the representation is.
            let content_range = format!("bytes */{size}");
            answers.simple(
                416,
                &[(b"Content-Range", content_range.as_bytes())],
                "Range Not Satisfiable",
            )
        }
    }
}

/// Encodes a file answer's head; the body, if any, goes to the connection to stream.
fn encode(
    answers: &FileAnswers<'_>,
    status: u16,
    headers: &[(&[u8], &[u8])],
    content_type: &[u8],
    len: u64,
    body: Option<FileBody>,
) -> Outgoing {
    let mut bytes = Vec::with_capacity(512);
    let mut head = HeadEncoder::new(&mut bytes, status);
    for (name, value) in headers.iter().chain(answers.handler_headers) {
        head.header(name, value);
    }
    let server = answers.server();
    head.finish(
        &server.server_headers(server.extra_lines),
        content_type,
        len,
    );
    let mut outgoing = Outgoing::new(status, bytes, Bytes::new(), server.persistence);
    outgoing.file = body.filter(|body| !answers.head_only && body.len > 0);
    outgoing
}

/// One file sent by a handler (`response.send_file`): the request it answers and what the
/// handler set.
pub struct OneFile<'a> {
    pub head: &'a RequestHead,
    pub head_only: bool,
    pub persistence: Persistence,
    pub server_identifier: &'a str,
    /// The CORS lines of the request, if any.
    pub extra_lines: &'a [u8],
    /// The handler's headers and cookies, validated.
    pub headers: &'a [(&'a [u8], &'a [u8])],
    pub content_type: Option<&'a str>,
}

/// Answers with the file at `path` exactly as a file router answers with a file it found:
/// validators, `304`, `Range` (`206`, `416`), `HEAD`, the body by `sendfile(2)`. The path
/// is the handler's choice (no root applies); a missing one is `404`, an unreadable one
/// `403` or `500`, a folder `404`.
pub fn respond_one(path: &Path, one: &OneFile<'_>) -> Outgoing {
    let answers = FileAnswers {
        head: one.head,
        head_only: one.head_only,
        persistence: one.persistence,
        server_identifier: one.server_identifier,
        extra_lines: one.extra_lines.to_vec(),
        handler_headers: one.headers,
        content_type: one.content_type,
    };
    serve_file(None, &answers, path, 200)
}

/// Why a file router's settings were refused; the message is for the caller.
#[derive(Debug)]
pub struct SettingsError(pub String);

/// Extensions as given (`"html"` or `".html"`), lowercased for comparison.
fn normalize_extensions(name: &str, extensions: &[String]) -> Result<Vec<String>, SettingsError> {
    extensions
        .iter()
        .map(|extension| {
            let bare = extension.strip_prefix('.').unwrap_or(extension);
            if bare.is_empty() || bare.contains(['/', '\\', '\0']) {
                return Err(SettingsError(format!(
                    "{name}: {extension:?} is not a file extension"
                )));
            }
            Ok(bare.to_ascii_lowercase())
        })
        .collect()
}

/// What a file router is asked to do, beyond its folder.
#[derive(Debug, Clone, Default)]
pub struct FileSettings {
    pub index_page: String,
    pub fallback_page: String,
    pub extensions: Vec<String>,
    pub exclude_extensions: Vec<String>,
    pub cross_origin_isolation: bool,
    /// The `Cache-Control` value of every answer, or none.
    pub cache_control: Option<String>,
}

/// Godot scripts: a project folder served as it is must not leak its source, so these are
/// never served whatever `exclude_extensions` says (GodotTPD refuses them too).
const NEVER_SERVED: &[&str] = &["gd"];

impl FileRoute {
    /// A router for the folder `root`, which must be canonical (see the field).
    pub fn new(root: PathBuf, settings: &FileSettings) -> Result<FileRoute, SettingsError> {
        let page = |what: &str, page: &str| {
            resolve::page_path(page).map_err(|_| {
                SettingsError(format!(
                    "{what} {page:?} must be a relative path inside the folder, without '..'"
                ))
            })
        };
        let index = page("index_page", &settings.index_page)?;
        let fallback = if settings.fallback_page.is_empty() {
            None
        } else {
            Some(page("fallback_page", &settings.fallback_page)?)
        };
        let mut exclude_extensions =
            normalize_extensions("exclude_extensions", &settings.exclude_extensions)?;
        for never in NEVER_SERVED {
            if !exclude_extensions
                .iter()
                .any(|extension| extension == never)
            {
                exclude_extensions.push((*never).to_owned());
            }
        }
        let mut extra_lines = Vec::new();
        if settings.cross_origin_isolation {
            extra_lines.extend_from_slice(CROSS_ORIGIN_ISOLATION);
        }
        if let Some(value) = settings.cache_control.as_deref().map(str::trim) {
            // RFC 9110 §5.5: a field value holds no CR, LF or NUL (nor other controls).
            if value.is_empty() || !crate::http::token::is_field_value(value.as_bytes()) {
                return Err(SettingsError(format!(
                    "cache_control {value:?} is empty or holds a control character"
                )));
            }
            extra_lines.extend_from_slice(b"Cache-Control: ");
            extra_lines.extend_from_slice(value.as_bytes());
            extra_lines.extend_from_slice(b"\r\n");
        }
        Ok(FileRoute {
            root,
            fallback_is_index: fallback.as_ref() == Some(&index),
            index_page: index,
            fallback_page: fallback,
            extensions: normalize_extensions("extensions", &settings.extensions)?,
            exclude_extensions,
            extra_lines: extra_lines.into_boxed_slice(),
        })
    }
}
