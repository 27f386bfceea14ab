//! The route table of the HTTP API: the `api` triggers of a rule set, compiled once per set,
//! and route selection as an HTTP API does it. Pure.
//!
//! Of the routes that match a request, the most specific wins: a route without a greedy
//! variable before one with it; then, segment by segment from the left, a literal before a
//! `{param}` before a `{proxy+}`; then an explicit method before `ANY`. `$default` answers
//! what nothing else matches. Route keys are unique within a rule set (the checker refuses
//! a key used twice), so there are no ties.

use crate::lambda_events::api::decode;
use crate::lambda_events::{RouteKey, Segment};
use crate::rules::{FunctionTriggerKind, PayloadFormat, RuleSet};

/// One `api` trigger.
#[derive(Debug, Clone)]
struct Route {
    key: RouteKey,
    function: String,
    format: PayloadFormat,
}

/// The routes of one rule set.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Index of the `$default` route in `routes`.
    default: Option<usize>,
}

/// The route a request goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected<'t> {
    pub key: &'t RouteKey,
    pub function: &'t str,
    pub format: PayloadFormat,
    /// Path parameters, decoded, in the route's order.
    pub params: Vec<(String, String)>,
}

/// How specific a match is; smaller is more specific.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    greedy: bool,
    /// Per segment: 0 literal, 1 parameter, 2 greedy.
    segments: Vec<u8>,
    any_method: bool,
}

impl RouteTable {
    pub fn new(rules: &RuleSet) -> RouteTable {
        let routes: Vec<Route> = rules
            .triggers
            .iter()
            .filter_map(|t| match &t.kind {
                FunctionTriggerKind::Api(a) => Some(Route {
                    key: a.route.clone(),
                    function: t.function.clone(),
                    format: a.payload_format,
                }),
                _ => None,
            })
            .collect();
        let default = routes.iter().position(|r| r.key == RouteKey::Default);
        RouteTable { routes, default }
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The route for `method` (upper case) and `raw_path` (as sent, percent-encoded), with its
    /// path parameters; `None` when nothing matches and there is no `$default`.
    pub fn select(&self, method: &str, raw_path: &str) -> Option<Selected<'_>> {
        let raw = raw_path.strip_prefix('/').unwrap_or(raw_path);
        let parts: Vec<&str> = if raw.is_empty() {
            Vec::new()
        } else {
            raw.split('/').collect()
        };
        let decoded: Vec<String> = parts.iter().map(|p| decode(p)).collect();
        let mut best: Option<(Rank, &Route)> = None;
        for route in &self.routes {
            let RouteKey::Route {
                method: m,
                path: segments,
            } = &route.key
            else {
                continue;
            };
            if m.as_deref().is_some_and(|m| m != method) {
                continue;
            }
            let Some(segments) = rank(segments, &decoded) else {
                continue;
            };
            let r = Rank {
                greedy: segments.last() == Some(&2),
                segments,
                any_method: m.is_none(),
            };
            if best.as_ref().is_none_or(|(b, _)| r < *b) {
                best = Some((r, route));
            }
        }
        let route = match best {
            Some((_, route)) => route,
            None => &self.routes[self.default?],
        };
        Some(Selected {
            key: &route.key,
            function: &route.function,
            format: route.format,
            params: params(&route.key, &parts, &decoded),
        })
    }
}

/// The rank of each segment if `segments` match the request's decoded path parts.
fn rank(segments: &[Segment], parts: &[String]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(segments.len());
    for (i, s) in segments.iter().enumerate() {
        match s {
            Segment::Literal(l) => {
                if parts.get(i) != Some(l) {
                    return None;
                }
                out.push(0);
            }
            Segment::Param(_) => {
                if parts.get(i).is_none_or(String::is_empty) {
                    return None;
                }
                out.push(1);
            }
            Segment::Greedy(_) => {
                // One segment or more, and not nothing at all.
                if parts[i.min(parts.len())..].iter().all(String::is_empty) {
                    return None;
                }
                out.push(2);
                return Some(out);
            }
        }
    }
    (parts.len() == segments.len()).then_some(out)
}

/// The path parameters of a matched route: a `{param}` is its decoded segment, a greedy one
/// the decoded rest of the path.
fn params(key: &RouteKey, raw: &[&str], decoded: &[String]) -> Vec<(String, String)> {
    let RouteKey::Route { path, .. } = key else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, s) in path.iter().enumerate() {
        match s {
            Segment::Literal(_) => {}
            Segment::Param(name) => {
                out.push((name.clone(), decoded.get(i).cloned().unwrap_or_default()));
            }
            Segment::Greedy(name) => {
                let rest = raw.get(i..).unwrap_or_default().join("/");
                out.push((name.clone(), decode(&rest)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{ApiRoute, FunctionTrigger, Settings};

    fn table(routes: &[&str]) -> RouteTable {
        let triggers = routes
            .iter()
            .map(|r| FunctionTrigger {
                function: format!("fn {r}"),
                kind: FunctionTriggerKind::Api(ApiRoute {
                    route: RouteKey::parse(r).unwrap(),
                    payload_format: PayloadFormat::V2,
                }),
                file: "f.yaml".into(),
                line: 1,
                column: 1,
            })
            .collect();
        let rules =
            RuleSet::new(Vec::new(), Vec::new(), Settings::default()).with_triggers(triggers);
        RouteTable::new(&rules)
    }

    #[track_caller]
    fn check(t: &RouteTable, method: &str, path: &str, expect: Option<&str>) {
        let got = t.select(method, path).map(|s| s.key.to_string());
        assert_eq!(got.as_deref(), expect, "{method} {path}");
    }

    #[test]
    fn the_most_specific_route_wins() {
        // The example of API Gateway's guide, and more.
        let t = table(&[
            "$default",
            "ANY /{proxy+}",
            "GET /pets/{proxy+}",
            "GET /pets/dog/{id}",
            "GET /pets/dog/1",
            "ANY /pets/dog/1",
            "GET /pets/{kind}/toys",
            "POST /pets",
            "GET /",
        ]);
        check(&t, "GET", "/pets/dog/1", Some("GET /pets/dog/1"));
        check(&t, "PUT", "/pets/dog/1", Some("ANY /pets/dog/1"));
        check(&t, "GET", "/pets/dog/2", Some("GET /pets/dog/{id}"));
        check(&t, "GET", "/pets/cat/toys", Some("GET /pets/{kind}/toys"));
        // Segment by segment from the left: `dog` (literal) before `{kind}`.
        check(&t, "GET", "/pets/dog/toys", Some("GET /pets/dog/{id}"));
        check(&t, "GET", "/pets/cat/2", Some("GET /pets/{proxy+}"));
        check(&t, "GET", "/pets/a/b/c/d", Some("GET /pets/{proxy+}"));
        check(&t, "DELETE", "/pets/cat", Some("ANY /{proxy+}"));
        check(&t, "POST", "/pets", Some("POST /pets"));
        check(&t, "GET", "/pets", Some("ANY /{proxy+}"));
        check(&t, "GET", "/", Some("GET /"));
        // Greedy needs one segment or more.
        check(&t, "POST", "/", Some("$default"));
    }

    #[test]
    fn literal_before_parameter_from_the_left() {
        let t = table(&["GET /{a}/x", "GET /y/{b}"]);
        check(&t, "GET", "/y/x", Some("GET /y/{b}"));
        check(&t, "GET", "/z/x", Some("GET /{a}/x"));
        check(&t, "GET", "/z/z", None);
    }

    #[test]
    fn without_a_default_nothing_matches_is_none() {
        let t = table(&["GET /hello"]);
        check(&t, "GET", "/hello", Some("GET /hello"));
        check(&t, "POST", "/hello", None);
        check(&t, "GET", "/hello/", None);
        check(&t, "GET", "/hello/x", None);
        check(&t, "HEAD", "/hello", None);
        assert!(table(&[]).is_empty());
    }

    #[test]
    fn parameters_are_decoded_and_greedy_ones_take_the_rest() {
        let t = table(&["GET /items/{id}", "ANY /files/{path+}", "GET /café"]);
        let s = t.select("GET", "/items/a%2Fb%20c").unwrap();
        assert_eq!(s.params, [("id".to_owned(), "a/b c".to_owned())]);
        assert_eq!(s.function, "fn GET /items/{id}");
        let s = t.select("GET", "/files/x/y%20z/").unwrap();
        assert_eq!(s.params, [("path".to_owned(), "x/y z/".to_owned())]);
        // Literals match decoded segments.
        check(&t, "GET", "/caf%C3%A9", Some("GET /café"));
        check(&t, "GET", "/items/", None);
        check(&t, "GET", "/files/", None);
    }
}
