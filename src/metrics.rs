//! Prometheus metrics: counters, gauges and histograms with labels, rendered in the text
//! exposition format for `GET /metrics`. Small and dependency-free: a map behind a mutex,
//! touched once per event or delivery, never per byte.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use rustc_hash::{FxHashMap, FxHasher};

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Every metric trigd exports, with its help text and type.
const METRICS: &[(&str, &str, &str)] = &[
    (
        "trigd_events_received_total",
        "counter",
        "Events accepted, by source.",
    ),
    (
        "trigd_events_rejected_total",
        "counter",
        "Events refused, by source and reason.",
    ),
    (
        "trigd_events_unmatched_total",
        "counter",
        "Accepted events that matched no rule.",
    ),
    (
        "trigd_trigger_invocations_total",
        "counter",
        "Asynchronous function invocations stored for the s3 and sns triggers on a source.",
    ),
    (
        "trigd_sqs_trigger_batches_total",
        "counter",
        "Batches an sqs trigger handed to its function, by function, source and result (success, partial, failure).",
    ),
    (
        "trigd_sqs_trigger_messages_total",
        "counter",
        "Messages of sqs triggers, by function, source and outcome: deleted after success, failed (left on the queue) or filtered (deleted unseen).",
    ),
    (
        "trigd_source_errors_total",
        "counter",
        "Failed calls of a source to its service (an SQS receive or delete), by source and operation.",
    ),
    (
        "trigd_rule_matches_total",
        "counter",
        "Events matched, by rule.",
    ),
    (
        "trigd_deliveries_total",
        "counter",
        "Delivery attempts, by rule, target and outcome.",
    ),
    (
        "trigd_dead_letters_total",
        "counter",
        "Deliveries sent to the dead letter, by rule, target and error code.",
    ),
    (
        "trigd_delivery_latency_seconds",
        "histogram",
        "From acceptance to successful delivery.",
    ),
    (
        "trigd_outbox_pending",
        "gauge",
        "Deliveries waiting in the outbox.",
    ),
    (
        "trigd_outbox_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest pending delivery.",
    ),
    (
        "trigd_outbox_commits_total",
        "counter",
        "Outbox transactions committed: each that stores new work is fsync'd (removals alone are not); writes per commit is the group-commit factor.",
    ),
    (
        "trigd_schedule_fires_total",
        "counter",
        "Schedule fires, by rule.",
    ),
    (
        "trigd_schedule_lateness_seconds",
        "histogram",
        "How late schedule fires were handled.",
    ),
    (
        "trigd_dead_letters_failed_total",
        "counter",
        "Dead letters that could not be sent to their dead-letter queue (kept locally), by rule and target.",
    ),
    (
        "trigd_destinations_total",
        "counter",
        "Results passed on to a destination, by rule, target and condition.",
    ),
    (
        "trigd_destination_loops_total",
        "counter",
        "Results not passed on because the chain of destinations reached its limit, by rule and target.",
    ),
    ("trigd_reloads_total", "counter", "Rule reloads, by result."),
    ("trigd_rules", "gauge", "Rules loaded."),
    (
        "trigd_function_invocations_total",
        "counter",
        "Invocations of local functions, by function and outcome (success, error, init_error, timeout, crash, out_of_memory).",
    ),
    (
        "trigd_function_duration_seconds",
        "histogram",
        "How long invocations of local functions ran, by function.",
    ),
    (
        "trigd_function_cold_starts_total",
        "counter",
        "Environments started for an invocation (cold starts), by function.",
    ),
    (
        "trigd_function_environments",
        "gauge",
        "Environments of a local function, busy or idle.",
    ),
    (
        "trigd_function_waiting",
        "gauge",
        "Invocations waiting for a free environment, by function.",
    ),
    (
        "trigd_api_requests_total",
        "counter",
        "Requests to the HTTP API listener, by route key (`-`: none matched; `$cors-preflight`: answered by the gateway) and status.",
    ),
    (
        "trigd_api_request_duration_seconds",
        "histogram",
        "From a request to the HTTP API listener to its answer, by route key.",
    ),
    (
        "trigd_invoke_api_refused_total",
        "counter",
        "Invoke API requests refused, by Lambda error type.",
    ),
];

type Labels = Vec<(&'static str, String)>;

/// Whether `name` is exported: a metric missing from [`METRICS`] would be counted and never
/// shown, so debug builds (every test) refuse it.
fn known(name: &str) -> bool {
    METRICS.iter().any(|(n, _, _)| *n == name)
}

#[derive(Debug, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// Per metric name, its label sets; found by the hash of the borrowed labels, so the hot path
/// neither allocates (a label set is copied once, when first seen) nor grows with the number
/// of label sets (one per rule and target, and there may be thousands of rules).
#[derive(Debug, Default)]
struct Inner {
    values: BTreeMap<&'static str, Series<f64>>,
    histograms: BTreeMap<&'static str, Series<Histogram>>,
}

/// One metric's label sets and their values.
#[derive(Debug)]
struct Series<T> {
    list: Vec<(Labels, T)>,
    /// Hash of a label set → its places in `list` (more than one only on a hash collision).
    index: FxHashMap<u64, Vec<usize>>,
}

impl<T> Default for Series<T> {
    fn default() -> Self {
        Series {
            list: Vec::new(),
            index: FxHashMap::default(),
        }
    }
}

impl<T> Series<T> {
    fn find(&self, labels: &[(&'static str, &str)]) -> Option<&T> {
        let places = self.index.get(&label_hash(labels))?;
        places
            .iter()
            .map(|&i| &self.list[i])
            .find(|(l, _)| same(l, labels))
            .map(|(_, v)| v)
    }
}

/// The same for a borrowed label set and its owned copy.
fn label_hash(labels: &[(&'static str, &str)]) -> u64 {
    let mut h = FxHasher::default();
    for (k, v) in labels {
        k.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

fn same(owned: &Labels, labels: &[(&'static str, &str)]) -> bool {
    owned.len() == labels.len()
        && owned
            .iter()
            .zip(labels)
            .all(|((k, v), (k2, v2))| k == k2 && v == v2)
}

fn slot<'a, T: Default>(series: &'a mut Series<T>, labels: &[(&'static str, &str)]) -> &'a mut T {
    let list = &mut series.list;
    let places = series.index.entry(label_hash(labels)).or_default();
    let i = match places.iter().copied().find(|&i| same(&list[i].0, labels)) {
        Some(i) => i,
        None => {
            list.push((owned(labels), T::default()));
            places.push(list.len() - 1);
            list.len() - 1
        }
    };
    &mut list[i].1
}

/// The registry.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A poisoned lock only means another thread panicked mid-update of a number; the
        // numbers are still usable.
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Adds `by` to a counter.
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], by: f64) {
        debug_assert!(known(name), "metric `{name}` is not in METRICS");
        self.with(|i| *slot(i.values.entry(name).or_default(), labels) += by);
    }

    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1.0);
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        debug_assert!(known(name), "metric `{name}` is not in METRICS");
        self.with(|i| *slot(i.values.entry(name).or_default(), labels) = value);
    }

    /// Records an observation in a histogram.
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        debug_assert!(known(name), "metric `{name}` is not in METRICS");
        self.with(|i| {
            let h = slot(i.histograms.entry(name).or_default(), labels);
            if h.counts.is_empty() {
                h.counts = vec![0; BUCKETS.len()];
            }
            for (slot, bound) in h.counts.iter_mut().zip(BUCKETS) {
                if value <= *bound {
                    *slot += 1;
                }
            }
            h.sum += value;
            h.count += 1;
        });
    }

    /// The current value of a counter or gauge (for tests and `trigd` itself).
    pub fn get(&self, name: &'static str, labels: &[(&'static str, &str)]) -> f64 {
        self.with(|i| {
            i.values
                .get(name)
                .and_then(|series| series.find(labels))
                .copied()
                .unwrap_or(0.0)
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        self.with(|i| {
            let mut out = String::new();
            for (name, kind, help) in METRICS {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                let mut values: Vec<&(Labels, f64)> = i
                    .values
                    .get(name)
                    .map(|series| series.list.iter().collect())
                    .unwrap_or_default();
                values.sort_by(|a, b| a.0.cmp(&b.0));
                for (labels, v) in values {
                    let _ = writeln!(out, "{name}{} {v}", fmt_labels(labels, None));
                }
                let mut hists: Vec<&(Labels, Histogram)> = i
                    .histograms
                    .get(name)
                    .map(|series| series.list.iter().collect())
                    .unwrap_or_default();
                hists.sort_by(|a, b| a.0.cmp(&b.0));
                for (labels, h) in hists {
                    for (bound, c) in BUCKETS.iter().zip(&h.counts) {
                        let le = format!("{bound}");
                        let _ = writeln!(out, "{name}_bucket{} {c}", fmt_labels(labels, Some(&le)));
                    }
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {}",
                        fmt_labels(labels, Some("+Inf")),
                        h.count
                    );
                    let _ = writeln!(out, "{name}_sum{} {}", fmt_labels(labels, None), h.sum);
                    let _ = writeln!(out, "{name}_count{} {}", fmt_labels(labels, None), h.count);
                }
            }
            out
        })
    }
}

fn owned(labels: &[(&'static str, &str)]) -> Labels {
    labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

fn fmt_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_label_sets_each_keep_their_own_value() {
        let m = Metrics::new();
        let rules: Vec<String> = (0..5_000).map(|i| format!("rule-{i}")).collect();
        for (i, rule) in rules.iter().enumerate() {
            for _ in 0..=(i % 3) {
                m.inc(
                    "trigd_deliveries_total",
                    &[("rule", rule), ("target", "t"), ("outcome", "delivered")],
                );
            }
        }
        for (i, rule) in rules.iter().enumerate() {
            let labels = [
                ("rule", rule.as_str()),
                ("target", "t"),
                ("outcome", "delivered"),
            ];
            assert_eq!(m.get("trigd_deliveries_total", &labels), (i % 3 + 1) as f64);
        }
        // The same values under other label names or order are other series.
        assert_eq!(
            m.get(
                "trigd_deliveries_total",
                &[
                    ("target", "t"),
                    ("rule", "rule-0"),
                    ("outcome", "delivered")
                ]
            ),
            0.0
        );
        assert_eq!(m.render().matches("trigd_deliveries_total{").count(), 5_000);
    }

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let m = Metrics::new();
        m.inc("trigd_events_received_total", &[("source", "github")]);
        m.inc("trigd_events_received_total", &[("source", "github")]);
        m.set("trigd_outbox_pending", &[], 3.0);
        m.observe("trigd_delivery_latency_seconds", &[("rule", "r\"x")], 0.004);
        let text = m.render();
        assert!(
            text.contains("trigd_events_received_total{source=\"github\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("trigd_outbox_pending 3\n"));
        assert!(
            text.contains(
                "trigd_delivery_latency_seconds_bucket{rule=\"r\\\"x\",le=\"0.0025\"} 0\n"
            )
        );
        assert!(
            text.contains(
                "trigd_delivery_latency_seconds_bucket{rule=\"r\\\"x\",le=\"0.005\"} 1\n"
            )
        );
        assert!(text.contains("trigd_delivery_latency_seconds_count{rule=\"r\\\"x\"} 1\n"));
        assert!(text.contains("# TYPE trigd_reloads_total counter\n"));
        assert_eq!(
            m.get("trigd_events_received_total", &[("source", "github")]),
            2.0
        );
    }
}
