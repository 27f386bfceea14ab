//! CORS as an HTTP API configures it (`api.cors` in `trigd.yaml`): the gateway answers a
//! preflight itself, without invoking anything, and puts its own CORS headers on responses
//! to an allowed origin in place of any the function set. A preflight is an `OPTIONS`
//! request with `Origin` and `Access-Control-Request-Method` (the listener tells). Pure.

use crate::config::settings::Cors;

/// Whether `origin` is allowed: listed (case-insensitively), covered by `*`, or by a
/// wildcard entry such as `https://*.example.com` (one label or more).
fn allows(cors: &Cors, origin: &str) -> bool {
    cors.allow_origins.iter().any(|allowed| {
        if allowed == "*" || allowed.eq_ignore_ascii_case(origin) {
            return true;
        }
        match allowed.split_once("://*.") {
            Some((scheme, domain)) => origin.split_once("://").is_some_and(|(s, host)| {
                s.eq_ignore_ascii_case(scheme)
                    && host.len() > domain.len() + 1
                    && host
                        .to_ascii_lowercase()
                        .ends_with(&format!(".{}", domain.to_ascii_lowercase()))
            }),
            None => false,
        }
    })
}

/// The `access-control-allow-origin` value for an allowed origin.
fn allow_origin(cors: &Cors, origin: &str) -> String {
    if cors.allow_origins.iter().any(|o| o == "*") && !cors.allow_credentials {
        "*".to_owned()
    } else {
        origin.to_owned()
    }
}

/// The headers of the answer to a preflight (status 204); none when the origin is not
/// allowed, so the browser refuses the request.
pub fn preflight(
    cors: &Cors,
    origin: &str,
    request_headers: Option<&str>,
) -> Vec<(String, String)> {
    if !allows(cors, origin) {
        return Vec::new();
    }
    let mut out = vec![(
        "access-control-allow-origin".to_owned(),
        allow_origin(cors, origin),
    )];
    if !cors.allow_methods.is_empty() {
        out.push((
            "access-control-allow-methods".to_owned(),
            cors.allow_methods.join(","),
        ));
    }
    let headers = if cors.allow_headers.iter().any(|h| h == "*") {
        // `*` allows what was asked for (with credentials a browser reads `*` literally).
        request_headers.map(str::to_owned)
    } else if cors.allow_headers.is_empty() {
        None
    } else {
        Some(cors.allow_headers.join(","))
    };
    if let Some(h) = headers {
        out.push(("access-control-allow-headers".to_owned(), h));
    }
    if let Some(age) = cors.max_age {
        out.push(("access-control-max-age".to_owned(), age.to_string()));
    }
    if cors.allow_credentials {
        out.push((
            "access-control-allow-credentials".to_owned(),
            "true".to_owned(),
        ));
    }
    if out[0].1 != "*" {
        out.push(("vary".to_owned(), "origin".to_owned()));
    }
    out
}

/// Puts the gateway's CORS headers on a response: the function's own `access-control-*`
/// headers are dropped (the gateway's configuration wins, as in API Gateway), and an allowed
/// origin gets `allow-origin`, `expose-headers` and `allow-credentials`.
pub fn decorate(cors: &Cors, origin: Option<&str>, headers: &mut Vec<(String, String)>) {
    headers.retain(|(name, _)| {
        !name
            .get(..15)
            .is_some_and(|p| p.eq_ignore_ascii_case("access-control-"))
    });
    let Some(origin) = origin.filter(|o| allows(cors, o)) else {
        return;
    };
    let value = allow_origin(cors, origin);
    let vary = value != "*";
    headers.push(("access-control-allow-origin".to_owned(), value));
    if !cors.expose_headers.is_empty() {
        headers.push((
            "access-control-expose-headers".to_owned(),
            cors.expose_headers.join(","),
        ));
    }
    if cors.allow_credentials {
        headers.push((
            "access-control-allow-credentials".to_owned(),
            "true".to_owned(),
        ));
    }
    if vary {
        headers.push(("vary".to_owned(), "origin".to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str]) -> Cors {
        Cors {
            allow_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["content-type".into(), "x-api-key".into()],
            expose_headers: vec!["x-request-id".into()],
            max_age: Some(300),
            allow_credentials: false,
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn origins_match_exactly_by_wildcard_or_star() {
        let c = cors(&["https://a.example", "https://*.b.example"]);
        assert!(allows(&c, "https://a.example"));
        assert!(allows(&c, "HTTPS://A.EXAMPLE"));
        assert!(allows(&c, "https://x.b.example"));
        assert!(allows(&c, "https://x.y.b.example"));
        assert!(!allows(&c, "https://b.example"));
        assert!(!allows(&c, "http://x.b.example"));
        assert!(!allows(&c, "https://evil-b.example"));
        assert!(!allows(&c, "https://a.example.evil"));
        assert!(allows(&cors(&["*"]), "null"));
    }

    #[test]
    fn a_preflight_is_answered_from_the_configuration() {
        let c = cors(&["https://a.example"]);
        assert_eq!(
            preflight(&c, "https://a.example", Some("content-type")),
            pairs(&[
                ("access-control-allow-origin", "https://a.example"),
                ("access-control-allow-methods", "GET,POST"),
                ("access-control-allow-headers", "content-type,x-api-key"),
                ("access-control-max-age", "300"),
                ("vary", "origin"),
            ])
        );
        assert!(preflight(&c, "https://other.example", None).is_empty());
        let star = Cors {
            allow_headers: vec!["*".into()],
            max_age: None,
            ..cors(&["*"])
        };
        assert_eq!(
            preflight(&star, "https://any.example", Some("x-custom")),
            pairs(&[
                ("access-control-allow-origin", "*"),
                ("access-control-allow-methods", "GET,POST"),
                ("access-control-allow-headers", "x-custom"),
            ])
        );
        let creds = Cors {
            allow_credentials: true,
            ..cors(&["https://a.example"])
        };
        assert!(
            preflight(&creds, "https://a.example", None)
                .contains(&("access-control-allow-credentials".into(), "true".into()))
        );
    }

    #[test]
    fn responses_get_the_gateways_headers_in_place_of_the_functions() {
        let c = Cors {
            allow_credentials: true,
            ..cors(&["https://a.example"])
        };
        let mut h = pairs(&[
            ("content-type", "text/plain"),
            ("Access-Control-Allow-Origin", "*"),
        ]);
        decorate(&c, Some("https://a.example"), &mut h);
        assert_eq!(
            h,
            pairs(&[
                ("content-type", "text/plain"),
                ("access-control-allow-origin", "https://a.example"),
                ("access-control-expose-headers", "x-request-id"),
                ("access-control-allow-credentials", "true"),
                ("vary", "origin"),
            ])
        );
        // Not allowed, or no origin: no CORS headers at all.
        for origin in [Some("https://evil.example"), None] {
            let mut h = pairs(&[("access-control-allow-origin", "*")]);
            decorate(&c, origin, &mut h);
            assert!(h.is_empty(), "{origin:?}");
        }
    }
}
