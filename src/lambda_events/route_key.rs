//! API Gateway HTTP API route keys: `METHOD /path` (literal segments, `{param}`, a final
//! `{name+}` greedy segment), `ANY /path`, and `$default`.

use std::fmt;

/// The methods a route key may name (`ANY` is [`RouteKey::Route`] with `method: None`).
pub const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// A parsed route key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteKey {
    /// `$default`: requests no other route matches.
    Default,
    Route {
        /// Upper case; `None` for `ANY`.
        method: Option<String>,
        /// The path's segments (`/` is no segment at all).
        path: Vec<Segment>,
    },
}

/// One segment of a route's path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Literal(String),
    /// `{name}`: one segment, any value.
    Param(String),
    /// `{name+}`: the rest of the path, one segment or more; only last.
    Greedy(String),
}

/// Why a route key is not one API Gateway accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RouteKeyError(pub String);

impl RouteKey {
    /// Parses `GET /items/{id}`, `ANY /files/{proxy+}` or `$default`.
    pub fn parse(text: &str) -> Result<RouteKey, RouteKeyError> {
        if text == "$default" {
            return Ok(RouteKey::Default);
        }
        let err = |m: String| Err(RouteKeyError(m));
        let Some((method, path)) = text.split_once(' ') else {
            return err(format!(
                "route `{text}` must be `METHOD /path` (e.g. `GET /hello`, `ANY /items/{{id}}`) or `$default`"
            ));
        };
        let method = match method {
            "ANY" => None,
            m if METHODS.contains(&m) => Some(m.to_owned()),
            m => {
                return err(format!(
                    "`{m}` is not a method of a route; use one of {} or ANY (upper case)",
                    METHODS.join(", ")
                ));
            }
        };
        let Some(rest) = path.strip_prefix('/') else {
            return err(format!("the path of route `{text}` must start with `/`"));
        };
        let mut segments = Vec::new();
        if !rest.is_empty() {
            let parts: Vec<&str> = rest.split('/').collect();
            for (i, part) in parts.iter().enumerate() {
                let last = i + 1 == parts.len();
                segments.push(
                    segment(part, last)
                        .map_err(|m| RouteKeyError(format!("route `{text}`: {m}")))?,
                );
            }
        }
        let mut names: Vec<&str> = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(n) | Segment::Greedy(n) => Some(n.as_str()),
                Segment::Literal(_) => None,
            })
            .collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return err(format!(
                "route `{text}` names path parameter `{}` twice",
                w[0]
            ));
        }
        Ok(RouteKey::Route {
            method,
            path: segments,
        })
    }

    /// The path parameters' names, in order.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        let path: &[Segment] = match self {
            RouteKey::Route { path, .. } => path,
            RouteKey::Default => &[],
        };
        path.iter().filter_map(|s| match s {
            Segment::Param(n) | Segment::Greedy(n) => Some(n.as_str()),
            Segment::Literal(_) => None,
        })
    }
}

fn segment(part: &str, last: bool) -> Result<Segment, String> {
    if part.is_empty() {
        return Err("a path has no empty segments (`//` or a trailing `/`)".to_owned());
    }
    if let Some(inner) = part.strip_prefix('{') {
        let Some(inner) = inner.strip_suffix('}') else {
            return Err(format!("segment `{part}` opens `{{` without closing it"));
        };
        let (name, greedy) = match inner.strip_suffix('+') {
            Some(n) => (n, true),
            None => (inner, false),
        };
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid {
            return Err(format!(
                "parameter `{part}` needs a name of letters, digits, `_`, `-` or `.`"
            ));
        }
        return match (greedy, last) {
            (true, true) => Ok(Segment::Greedy(name.to_owned())),
            (true, false) => Err(format!(
                "the greedy parameter `{part}` must be the path's last segment"
            )),
            (false, _) => Ok(Segment::Param(name.to_owned())),
        };
    }
    if part.contains(['{', '}']) {
        return Err(format!(
            "segment `{part}` mixes text and a parameter; a parameter is a whole segment"
        ));
    }
    Ok(Segment::Literal(part.to_owned()))
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteKey::Default => f.write_str("$default"),
            RouteKey::Route { method, path } => {
                f.write_str(method.as_deref().unwrap_or("ANY"))?;
                f.write_str(" ")?;
                if path.is_empty() {
                    return f.write_str("/");
                }
                for s in path {
                    match s {
                        Segment::Literal(l) => write!(f, "/{l}")?,
                        Segment::Param(n) => write!(f, "/{{{n}}}")?,
                        Segment::Greedy(n) => write!(f, "/{{{n}+}}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_keys_parse_and_print_as_written() {
        for text in [
            "$default",
            "GET /hello",
            "ANY /items/{id}",
            "POST /",
            "ANY /files/{proxy+}",
            "DELETE /a/{b}/c/{d+}",
        ] {
            assert_eq!(RouteKey::parse(text).unwrap().to_string(), text);
        }
        let key = RouteKey::parse("GET /a/{b}/{rest+}").unwrap();
        assert_eq!(key.params().collect::<Vec<_>>(), ["b", "rest"]);
    }

    #[test]
    fn bad_route_keys_say_what_to_write() {
        for (text, why) in [
            ("/hello", "METHOD /path"),
            ("get /hello", "upper case"),
            ("FETCH /x", "not a method"),
            ("GET hello", "start with `/`"),
            ("GET /a//b", "empty segments"),
            ("GET /a/", "empty segments"),
            ("GET /{proxy+}/x", "last segment"),
            ("GET /{}", "needs a name"),
            ("GET /a{b}", "whole segment"),
            ("GET /{a/b}", "without closing"),
            ("GET /{id}/{id}", "twice"),
        ] {
            let e = RouteKey::parse(text).unwrap_err().0;
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
