//! Route patterns, compiled once at registration and matched in Rust on every request.
//!
//! Three kinds, as GodotTPD has them: segment patterns (`/users/:id/posts`, where `:id`
//! captures one percent-decoded segment and every other segment matches literally), regular
//! expressions (a path starting with `^`, matched against the decoded path, named groups
//! captured), and prefixes (a file router owns its prefix and everything below it). A single
//! trailing `/` on the request is optional. Routes are tried in registration order.

use std::borrow::Cow;

use percent_encoding::percent_decode;
use regex::Regex;
use smallvec::SmallVec;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Parameter(String),
}

#[derive(Clone, Debug)]
pub enum Pattern {
    Segments(Vec<Segment>),
    Regex(Regex),
    Prefix(Vec<String>),
}

/// Why a route could not be registered.
#[derive(Debug)]
pub struct PatternError(pub String);

impl Pattern {
    /// Compiles a route path. `prefix` makes it match everything below it too (file routers).
    pub fn compile(path: &str, prefix: bool) -> Result<Pattern, PatternError> {
        if let Some(expression) = path.strip_prefix('^').map(|_| path) {
            if prefix {
                return Err(PatternError(
                    "a file router needs a path prefix, not a regular expression".into(),
                ));
            }
            return Regex::new(expression).map(Pattern::Regex).map_err(|error| {
                PatternError(format!(
                    "invalid route regular expression {path:?}: {error}"
                ))
            });
        }
        if !path.starts_with('/') {
            return Err(PatternError(format!(
                "route path {path:?} must start with '/' (or '^' for a regular expression)"
            )));
        }
        let mut segments = Vec::new();
        for raw in split_segments(path) {
            match raw.strip_prefix(':') {
                Some("") => {
                    return Err(PatternError(format!(
                        "route path {path:?} has a parameter without a name"
                    )))
                }
                Some(name) if !prefix => segments.push(Segment::Parameter(name.to_owned())),
                _ => segments.push(Segment::Literal(raw.to_owned())),
            }
        }
        if prefix {
            let literals = segments
                .into_iter()
                .map(|segment| match segment {
                    Segment::Literal(text) | Segment::Parameter(text) => text,
                })
                .collect();
            return Ok(Pattern::Prefix(literals));
        }
        Ok(Pattern::Segments(segments))
    }
}

/// The segments of a path: `/a/b/` gives `a`, `b` (one trailing slash is not a segment).
fn split_segments(path: &str) -> impl Iterator<Item = &str> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    trimmed.split('/').filter(move |_| !trimmed.is_empty())
}

/// A request path, decoded once and shared by every pattern tried against it.
pub struct RequestPath<'a> {
    /// The whole path, percent-decoded.
    pub decoded: Cow<'a, str>,
    raw_segments: SmallVec<[&'a str; 8]>,
    decoded_segments: SmallVec<[Cow<'a, str>; 8]>,
}

impl<'a> RequestPath<'a> {
    /// `None` when the percent-decoded path is not UTF-8 (the caller answers 400).
    pub fn new(raw: &'a str) -> Option<RequestPath<'a>> {
        let decoded = percent_decode(raw.as_bytes()).decode_utf8().ok()?;
        let raw_segments: SmallVec<[&str; 8]> = split_segments(raw).collect();
        let decoded_segments = raw_segments
            .iter()
            .map(|segment| percent_decode(segment.as_bytes()).decode_utf8_lossy())
            .collect();
        Some(RequestPath {
            decoded,
            raw_segments,
            decoded_segments,
        })
    }

    /// The decoded path, owned; the segments are dropped.
    pub fn into_decoded(self) -> String {
        self.decoded.into_owned()
    }

    /// The raw (still encoded) segments after the first `from`.
    pub fn raw_tail(&self, from: usize) -> &[&'a str] {
        self.raw_segments.get(from..).unwrap_or(&[])
    }
}

/// What a match captured.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Captures {
    /// Path parameters, in pattern order.
    pub parameters: Vec<(String, String)>,
    /// For a prefix route: how many segments the prefix took.
    pub prefix_len: usize,
}

impl Pattern {
    pub fn matches(&self, path: &RequestPath<'_>) -> Option<Captures> {
        match self {
            Pattern::Segments(segments) => {
                if segments.len() != path.decoded_segments.len() {
                    return None;
                }
                let mut parameters = Vec::new();
                for (segment, actual) in segments.iter().zip(&path.decoded_segments) {
                    match segment {
                        Segment::Literal(expected) if expected == actual => {}
                        Segment::Parameter(name) if !actual.is_empty() => {
                            parameters.push((name.clone(), actual.to_string()));
                        }
                        _ => return None,
                    }
                }
                Some(Captures {
                    parameters,
                    prefix_len: 0,
                })
            }
            Pattern::Regex(regex) => {
                let found = regex.captures(&path.decoded)?;
                let parameters = regex
                    .capture_names()
                    .flatten()
                    .filter_map(|name| {
                        found
                            .name(name)
                            .map(|value| (name.to_owned(), value.as_str().to_owned()))
                    })
                    .collect();
                Some(Captures {
                    parameters,
                    prefix_len: 0,
                })
            }
            Pattern::Prefix(prefix) => {
                if prefix.len() > path.decoded_segments.len()
                    || prefix
                        .iter()
                        .zip(&path.decoded_segments)
                        .any(|(expected, actual)| expected != actual)
                {
                    return None;
                }
                Some(Captures {
                    parameters: Vec::new(),
                    prefix_len: prefix.len(),
                })
            }
        }
    }
}

/// Routes in registration order, each with what it leads to.
pub struct RouteTable<T> {
    routes: Vec<(Pattern, T)>,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        RouteTable { routes: Vec::new() }
    }
}

impl<T: Clone> RouteTable<T> {
    /// A copy of this table with one more route at the end (tables are swapped in whole,
    /// so connections never see one half-updated).
    pub fn with_route(&self, pattern: Pattern, target: T) -> RouteTable<T> {
        let mut routes = self.routes.clone();
        routes.push((pattern, target));
        RouteTable { routes }
    }
}

impl<T> RouteTable<T> {
    /// The first route that matches, with its captures.
    pub fn find(&self, path: &RequestPath<'_>) -> Option<(&T, Captures)> {
        self.routes
            .iter()
            .find_map(|(pattern, target)| pattern.matches(path).map(|captures| (target, captures)))
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(paths: &[&str]) -> RouteTable<usize> {
        paths
            .iter()
            .enumerate()
            .fold(RouteTable::default(), |table, (index, path)| {
                table.with_route(Pattern::compile(path, false).unwrap(), index)
            })
    }

    fn find(table: &RouteTable<usize>, raw: &str) -> Option<(usize, Vec<(String, String)>)> {
        let path = RequestPath::new(raw)?;
        table
            .find(&path)
            .map(|(index, captures)| (*index, captures.parameters))
    }

    #[test]
    fn parameters_are_decoded_segments() {
        let routes = table(&["/hello/:name", "/files/:dir/:file"]);
        assert_eq!(
            find(&routes, "/hello/J%C3%BCrgen%2Fx"),
            Some((0, vec![("name".into(), "Jürgen/x".into())]))
        );
        assert_eq!(
            find(&routes, "/hello/bob/"),
            Some((0, vec![("name".into(), "bob".into())]))
        );
        assert_eq!(find(&routes, "/hello/"), None);
        assert_eq!(find(&routes, "/hello/a/b"), None);
        assert_eq!(find(&routes, "/files/a/b").map(|m| m.1.len()), Some(2));
    }

    #[test]
    fn literals_are_literal_and_first_match_wins() {
        let routes = table(&["/a.b", "/:x", "/"]);
        assert_eq!(find(&routes, "/a.b").map(|m| m.0), Some(0));
        assert_eq!(find(&routes, "/aXb").map(|m| m.0), Some(1));
        assert_eq!(find(&routes, "/").map(|m| m.0), Some(2));
        assert_eq!(find(&routes, "").map(|m| m.0), Some(2));
    }

    #[test]
    fn regular_expressions_capture_named_groups() {
        let routes = table(&["^/user/(?P<id>[0-9]+)$"]);
        assert_eq!(
            find(&routes, "/user/42"),
            Some((0, vec![("id".into(), "42".into())]))
        );
        assert_eq!(find(&routes, "/user/x"), None);
        assert!(Pattern::compile("^/(", false).is_err());
        assert!(Pattern::compile("relative", false).is_err());
    }

    #[test]
    fn prefixes_take_everything_below() {
        let pattern = Pattern::compile("/static", true).unwrap();
        let path = RequestPath::new("/static/css/a.css").unwrap();
        let captures = pattern.matches(&path).unwrap();
        assert_eq!(captures.prefix_len, 1);
        assert_eq!(path.raw_tail(1), &["css", "a.css"]);
        assert!(pattern
            .matches(&RequestPath::new("/staticx/a").unwrap())
            .is_none());
        let root = Pattern::compile("/", true).unwrap();
        assert!(root
            .matches(&RequestPath::new("/anything/at/all").unwrap())
            .is_some());
    }

    #[test]
    fn invalid_utf8_paths_are_refused() {
        assert!(RequestPath::new("/%ff").is_none());
    }
}
