//! The routing decision for one request: request head in, what answers it out.
//!
//! The connection knows only the protocol; this function alone knows routes, CORS, which
//! handler takes which method, and the server's own answers (`OPTIONS *`, 404, 405, CORS
//! preflights). It does no I/O, so it is tested with plain values.

use std::sync::Arc;

use crate::app::answer::ServerAnswer;
use crate::app::config::{HandlerRoute, LiveConfig, Target};
use crate::app::cors::Cors;
use crate::app::exchange::Outgoing;
use crate::app::exchange::{ConnectionInfo, ReplyContext, RequestData};
use crate::app::files::{FileRequest, FileRoute};
use crate::app::routes::RequestPath;
use crate::app::upload::RequestBody;
use crate::http::encode::Persistence;
use crate::http::error::RequestError;
use crate::http::method::{allow_all, KnownMethod, Method};
use crate::http::parse::RequestHead;

/// What answers one request.
pub enum Decision<R> {
    /// The server answers at once (`OPTIONS *`, 404, 405, a preflight).
    Answer(Outgoing),
    /// The request cannot be routed; its error is the answer, then the connection closes.
    Refuse(RequestError),
    /// A file router answers it (its file-system calls are the caller's to make).
    Files(Arc<FileRoute>, FileRequest),
    /// A handler of the application answers it. The request's body is still to be read:
    /// the connection reads it as the route's [`HandlerRoute::body_policy`] says, then
    /// attaches it with [`ReplyContext::with_body`].
    Handler {
        route: Arc<R>,
        method: KnownMethod,
        context: ReplyContext,
    },
}

/// A decision, and whether the connection stays open after its answer.
pub struct Routed<R> {
    pub decision: Decision<R>,
    pub persistence: Persistence,
}

/// How the connection goes on after this request's answer (RFC 9112 §9.3): closed when the
/// client asked, or when the server is stopping; an HTTP/1.0 client that asked for
/// keep-alive is told it has it.
pub fn persistence(head: &RequestHead, stopping: bool) -> Persistence {
    if !head.keep_alive || stopping {
        Persistence::Close
    } else if head.http10 {
        Persistence::KeepAliveHttp10
    } else {
        Persistence::KeepAlive
    }
}

/// Routes one request by its head (its body, if any, is read afterwards: how depends on
/// where it goes).
pub fn decide<R: HandlerRoute>(
    config: &LiveConfig<R>,
    head: RequestHead,
    connection: &Arc<ConnectionInfo>,
) -> Routed<R> {
    let persistence = persistence(&head, connection.server_stopping());
    let routed = |decision| Routed {
        decision,
        persistence,
    };
    let identifier = config.server_identifier.load_full();
    let head_only = head.method == Method::HEAD;
    let server = |extra_lines| ServerAnswer {
        server_identifier: &identifier,
        persistence,
        extra_lines,
        head_only,
    };
    if head.asterisk {
        // RFC 9110 §9.3.7: `OPTIONS *` asks about the server itself.
        let allow = allow_all();
        let answer = server(b"").text(204, &[(b"Allow", allow.as_bytes())], b"");
        return routed(Decision::Answer(answer));
    }
    // The target was checked to be ASCII by the parser.
    let raw_path = std::str::from_utf8(head.raw_path()).unwrap_or("/");
    let Some(path) = RequestPath::new(raw_path) else {
        return routed(Decision::Refuse(RequestError::bad_request(
            "the path is not UTF-8 once percent-decoded",
        )));
    };
    let cors = config.cors.load();
    let cors_lines = cors
        .as_ref()
        .and_then(|cors| cors.lines_for(head.first_header("origin")));
    let cors_extra = cors_lines.as_deref().unwrap_or_default();
    // Only a request from an allowed origin can be a preflight.
    let preflight_cors = cors.as_deref().filter(|_| cors_lines.is_some());
    let routes = config.routes.load();
    let Some((target, captures)) = routes.find(&path) else {
        return routed(Decision::Answer(server(cors_extra).text(
            404,
            &[],
            b"Not found",
        )));
    };
    match target {
        Target::Files(files) => {
            // RFC 9110 §9.1: a file router implements GET and HEAD only.
            if !matches!(head.method, Method::GET | Method::HEAD) {
                let answer = not_allowed(&server(cors_extra), &head, preflight_cors, "GET, HEAD");
                return routed(Decision::Answer(answer));
            }
            let tail = path
                .raw_tail(captures.prefix_len)
                .iter()
                .map(|segment| (*segment).to_owned())
                .collect();
            drop(path);
            let request = FileRequest {
                trailing_slash: head.raw_path().ends_with(b"/"),
                head,
                tail,
                head_only,
                persistence,
                cors_lines,
                server_identifier: identifier,
            };
            routed(Decision::Files(files.clone(), request))
        }
        Target::Handler(route) => {
            let method = match head.method.known() {
                // RFC 9110 §9.3.2: HEAD is GET without the body, unless the router says
                // otherwise.
                Some(KnownMethod::Head) if !route.handles(KnownMethod::Head) => {
                    Some(KnownMethod::Get)
                }
                other => other,
            };
            let Some(method) = method.filter(|method| route.handles(*method)) else {
                let answer = not_allowed(&server(cors_extra), &head, preflight_cors, route.allow());
                return routed(Decision::Answer(answer));
            };
            let context = ReplyContext {
                request: Arc::new(RequestData {
                    path: path.into_decoded(),
                    parameters: captures.parameters,
                    head,
                    body: RequestBody::default(),
                }),
                connection: connection.clone(),
                head_only,
                persistence,
                cors_lines,
                allow: route.allow().clone(),
                server_identifier: identifier.clone(),
            };
            routed(Decision::Handler {
                route: route.clone(),
                method,
                context,
            })
        }
    }
}

/// The answer to a method the route does not take: a CORS preflight (an `OPTIONS` with
/// `Access-Control-Request-Method` from an allowed origin) gets `204` with the CORS
/// headers; anything else `405` with `Allow` (RFC 9110 §15.5.6).
fn not_allowed(
    server: &ServerAnswer<'_>,
    head: &RequestHead,
    preflight_cors: Option<&Cors>,
    allow: &str,
) -> Outgoing {
    let is_preflight = head.method == Method::OPTIONS
        && head.first_header("access-control-request-method").is_some();
    match preflight_cors {
        Some(cors) if is_preflight => {
            let mut lines = server.extra_lines.to_vec();
            lines.extend_from_slice(&cors.preflight_lines());
            server.text_with_lines(204, &lines, &[], b"")
        }
        _ => server.text(405, &[(b"Allow", allow.as_bytes())], b"Method Not Allowed"),
    }
}
