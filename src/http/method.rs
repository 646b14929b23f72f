//! Request methods: the seven a router can handle, in one list.
//!
//! Every other place that needs the method names (the parser, the `Allow` header of
//! `OPTIONS *`, the `handle_*` names of a router, `request.method`) reads them from
//! [`KnownMethod::ALL`], so the list exists once.

/// A method a router can handle (RFC 9110 §9.3), in `Allow` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KnownMethod {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl KnownMethod {
    /// Every routable method, in the order `Allow` lists them.
    pub const ALL: [KnownMethod; 7] = [
        KnownMethod::Get,
        KnownMethod::Head,
        KnownMethod::Post,
        KnownMethod::Put,
        KnownMethod::Patch,
        KnownMethod::Delete,
        KnownMethod::Options,
    ];

    /// The method token (RFC 9110 §9.1: case-sensitive).
    pub const fn name(self) -> &'static str {
        match self {
            KnownMethod::Get => "GET",
            KnownMethod::Head => "HEAD",
            KnownMethod::Post => "POST",
            KnownMethod::Put => "PUT",
            KnownMethod::Patch => "PATCH",
            KnownMethod::Delete => "DELETE",
            KnownMethod::Options => "OPTIONS",
        }
    }

    /// The name of the router method that handles it (GodotTPD's `handle_get`, ...).
    pub const fn handler_name(self) -> &'static str {
        match self {
            KnownMethod::Get => "handle_get",
            KnownMethod::Head => "handle_head",
            KnownMethod::Post => "handle_post",
            KnownMethod::Put => "handle_put",
            KnownMethod::Patch => "handle_patch",
            KnownMethod::Delete => "handle_delete",
            KnownMethod::Options => "handle_options",
        }
    }

    /// Its position in [`KnownMethod::ALL`], for per-method tables.
    pub const fn index(self) -> usize {
        self as usize
    }

    fn from_token(token: &str) -> Option<KnownMethod> {
        KnownMethod::ALL
            .into_iter()
            .find(|method| method.name() == token)
    }
}

/// The `Allow` value of a resource that takes every routable method (`OPTIONS *`).
pub fn allow_all() -> String {
    allow_list(KnownMethod::ALL)
}

/// An `Allow` value: the methods given, comma-separated, in the order given.
pub fn allow_list(methods: impl IntoIterator<Item = KnownMethod>) -> String {
    let names: Vec<&str> = methods.into_iter().map(KnownMethod::name).collect();
    names.join(", ")
}

/// The method of a request: one a router can handle, or any other token, kept by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Known(KnownMethod),
    Other(Box<str>),
}

impl Method {
    pub const GET: Method = Method::Known(KnownMethod::Get);
    pub const HEAD: Method = Method::Known(KnownMethod::Head);
    pub const OPTIONS: Method = Method::Known(KnownMethod::Options);

    /// The method of a request line's (already validated) method token.
    pub fn from_token(token: &str) -> Method {
        match KnownMethod::from_token(token) {
            Some(known) => Method::Known(known),
            None => Method::Other(token.into()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Known(known) => known.name(),
            Method::Other(name) => name,
        }
    }

    pub fn known(&self) -> Option<KnownMethod> {
        match self {
            Method::Known(known) => Some(*known),
            Method::Other(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_case_sensitive() {
        for known in KnownMethod::ALL {
            assert_eq!(Method::from_token(known.name()), Method::Known(known));
            assert_eq!(KnownMethod::ALL[known.index()], known);
        }
        assert_eq!(Method::from_token("get"), Method::Other("get".into()));
        assert_eq!(Method::from_token("BREW").as_str(), "BREW");
    }

    #[test]
    fn allow_lists_in_order() {
        assert_eq!(allow_all(), "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
        assert_eq!(
            allow_list([KnownMethod::Get, KnownMethod::Head]),
            "GET, HEAD"
        );
    }
}
