//! Cross-origin resource sharing, as `enable_cors()` configures it (Fetch standard, §3.2).
//!
//! `Access-Control-Allow-Origin` names one origin, so the server echoes the request's
//! `Origin` when it is allowed (with `Vary: Origin`, since the answer then depends on it), or
//! sends `*` when every origin is. Lines are rendered once, at `enable_cors()`.

use std::sync::Arc;

use crate::http::token::is_field_value;

pub struct Cors {
    any_origin: Option<Arc<[u8]>>,
    origins: Vec<(String, Arc<[u8]>)>,
    methods: String,
    headers: String,
}

impl Cors {
    pub fn new(origins: Vec<String>, methods: String, headers: String) -> Result<Cors, String> {
        for text in origins.iter().chain([&methods, &headers]) {
            if !is_field_value(text.as_bytes()) {
                return Err(format!("CORS setting {text:?} holds a control character"));
            }
        }
        let any_origin = origins
            .iter()
            .any(|origin| origin == "*")
            .then(|| Arc::from(&b"Access-Control-Allow-Origin: *\r\n"[..]));
        let origins = origins
            .into_iter()
            .filter(|origin| origin != "*")
            .map(|origin| {
                let lines = format!("Access-Control-Allow-Origin: {origin}\r\nVary: Origin\r\n");
                (origin, Arc::from(lines.into_bytes()))
            })
            .collect();
        Ok(Cors {
            any_origin,
            origins,
            methods,
            headers,
        })
    }

    /// The CORS lines for a response to a request with this `Origin` (none if not allowed).
    pub fn lines_for(&self, origin: Option<&[u8]>) -> Option<Arc<[u8]>> {
        let origin = origin?;
        if let Some(any) = &self.any_origin {
            return Some(any.clone());
        }
        self.origins
            .iter()
            .find(|(allowed, _)| allowed.as_bytes() == origin)
            .map(|(_, lines)| lines.clone())
    }

    /// The extra lines of a preflight answer.
    pub fn preflight_lines(&self) -> Vec<u8> {
        format!(
            "Access-Control-Allow-Methods: {}\r\nAccess-Control-Allow-Headers: {}\r\nAccess-Control-Max-Age: 600\r\n",
            self.methods, self.headers
        )
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_allowed_origins_only() {
        let cors = Cors::new(
            vec!["https://a.example".into()],
            "GET".into(),
            "content-type".into(),
        )
        .unwrap();
        let lines = cors.lines_for(Some(b"https://a.example")).unwrap();
        assert_eq!(
            &lines[..],
            b"Access-Control-Allow-Origin: https://a.example\r\nVary: Origin\r\n"
        );
        assert!(cors.lines_for(Some(b"https://b.example")).is_none());
        assert!(cors.lines_for(None).is_none());
    }

    #[test]
    fn star_allows_all() {
        let cors = Cors::new(vec!["*".into()], "GET".into(), "x".into()).unwrap();
        assert_eq!(
            &cors.lines_for(Some(b"https://b.example")).unwrap()[..],
            b"Access-Control-Allow-Origin: *\r\n"
        );
    }

    #[test]
    fn refuses_line_breaks() {
        assert!(Cors::new(vec!["a\r\nb".into()], "GET".into(), "x".into()).is_err());
    }
}
