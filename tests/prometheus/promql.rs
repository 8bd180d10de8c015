//! The text handling of prometheus' tests that needs neither files nor a
//! Prometheus: just enough PromQL to take an alert's condition apart into
//! the series it is built from, and the metric names a text uses or a scrape
//! exports. Tested here, on their own.

use std::collections::BTreeSet;

// ---------------------------------------------------------------- PromQL, just enough

/// For each byte of `s`: whether it stands at the top level, outside every
/// bracket (round, square, curly) and string literal.
fn top_level(s: &str) -> Vec<bool> {
    let mut out = Vec::with_capacity(s.len());
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    for &b in s.as_bytes() {
        let top = depth == 0 && quote.is_none();
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == q {
                    quote = None;
                }
            }
            None => match b {
                b'"' | b'\'' | b'`' => quote = Some(b),
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => depth -= 1,
                _ => {}
            },
        }
        out.push(top && quote.is_none());
    }
    out
}

/// The index of the bracket closing the one at `open`.
fn matching_close(s: &str, open: usize) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        if let Some(q) = quote {
            if b == q && bytes[i - 1] != b'\\' {
                quote = None;
            }
            continue;
        }
        match b {
            b'"' | b'\'' | b'`' => quote = Some(b),
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `(x)` → `x`, as often as the whole expression is one parenthesis.
fn unwrap_parens(mut s: &str) -> &str {
    loop {
        s = s.trim();
        if s.starts_with('(') && matching_close(s, 0) == Some(s.len() - 1) {
            s = &s[1..s.len() - 1];
        } else {
            return s;
        }
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

/// Splits at the top-level set operators `and`, `or`, `unless` (with their
/// `on(…)`/`ignoring(…)` modifiers).
fn split_set_operators(s: &str) -> Vec<String> {
    let bytes = s.as_bytes();
    let top = top_level(s);
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let at_word = top[i] && (i == 0 || !is_ident(bytes[i - 1]));
        let op = ["and", "or", "unless"].into_iter().find(|op| {
            at_word
                && s[i..].starts_with(op)
                && bytes.get(i + op.len()).is_none_or(|&b| !is_ident(b))
        });
        let Some(op) = op else {
            i += 1;
            continue;
        };
        parts.push(s[start..i].trim().to_owned());
        let mut next = i + op.len();
        let rest = s[next..].trim_start();
        for modifier in ["on", "ignoring"] {
            if let Some(after) = rest.strip_prefix(modifier) {
                let after_trim = after.trim_start();
                if after_trim.starts_with('(') {
                    let open = s.len() - after_trim.len();
                    next = matching_close(s, open).map_or(s.len(), |c| c + 1);
                }
            }
        }
        start = next;
        i = next;
    }
    parts.push(s[start..].trim().to_owned());
    parts
}

/// `x > 300`, `x == 0`, `x > bool 1e9` → `x`; anything else unchanged.
fn strip_scalar_comparison(s: &str) -> &str {
    let bytes = s.as_bytes();
    let top = top_level(s);
    let mut found = None;
    let mut i = 0;
    while i < bytes.len() {
        if top[i] {
            let two = s.get(i..i + 2).unwrap_or("");
            let len = if ["==", "!=", ">=", "<="].contains(&two) {
                2
            } else if matches!(bytes[i], b'>' | b'<') {
                1
            } else {
                0
            };
            if len > 0 {
                found = Some((i, len));
                i += len;
                continue;
            }
        }
        i += 1;
    }
    let Some((at, len)) = found else { return s };
    let rhs = s[at + len..].trim();
    let rhs = rhs.strip_prefix("bool ").map_or(rhs, str::trim);
    if rhs.parse::<f64>().is_ok() {
        s[..at].trim()
    } else {
        s
    }
}

/// The series an alert condition is made of, each of which must exist for
/// the alert to be able to fire.
///
/// An alert's expression is normally empty: `up == 0` has no result while
/// the tailer is up, which says nothing about whether `up` exists. So each
/// condition is taken apart: split at `and`/`or`/`unless`, a comparison with
/// a number dropped (`x > 300` → `x`), `absent(x)` → `x`, recursively.
/// What remains (`up{job="binlog-tailer"}`,
/// `sum by (…) (increase(binlog_tailer_publish_errors_total[5m]))`, …) must
/// return data on a healthy tailer: if it did not (a misspelt name, a label
/// the tailer does not set, a series that only appears after the first
/// error), the alert could never fire.
pub(crate) fn condition_operands(expr: &str) -> Vec<String> {
    let expr = unwrap_parens(expr);
    let parts = split_set_operators(expr);
    if parts.len() > 1 {
        return parts.iter().flat_map(|p| condition_operands(p)).collect();
    }
    let inner = unwrap_parens(strip_scalar_comparison(expr));
    if let Some(arg) = inner.strip_prefix("absent(") {
        if matching_close(inner, "absent".len()) == Some(inner.len() - 1) {
            return condition_operands(&arg[..arg.len() - 1]);
        }
    }
    if inner != expr {
        return condition_operands(inner);
    }
    vec![inner.to_owned()]
}

// ---------------------------------------------------------------- metric names

/// Every `binlog_tailer_[a-z_]+` word in `text`.
pub(crate) fn metric_names(text: &str) -> BTreeSet<String> {
    const PREFIX: &str = "binlog_tailer_";
    let bytes = text.as_bytes();
    let mut names = BTreeSet::new();
    let mut from = 0;
    while let Some(found) = text[from..].find(PREFIX) {
        let start = from + found;
        let mut end = start + PREFIX.len();
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        let word_start = start == 0 || !is_ident(bytes[start - 1]);
        if word_start && end > start + PREFIX.len() {
            names.insert(text[start..end].to_owned());
        }
        from = end;
    }
    names
}

/// The names a Prometheus text exposition exports: every sample's name (a
/// histogram's `_bucket`, `_sum`, `_count`) and every family in `# TYPE`.
pub(crate) fn exported_names(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.split_whitespace().next() {
                names.insert(name.to_owned());
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// Names used in dashboards/ that the scrape does not export.
pub(crate) fn unexported(used: &BTreeSet<String>, exported: &BTreeSet<String>) -> Vec<String> {
    used.difference(exported).cloned().collect()
}

// ---------------------------------------------------------------- the checker, checked

#[test]
fn alert_conditions_come_apart_into_their_series() {
    assert_eq!(
        condition_operands("up{job=\"binlog-tailer\"} == 0"),
        ["up{job=\"binlog-tailer\"}"]
    );
    assert_eq!(
        condition_operands("absent(up{job=\"binlog-tailer\"})"),
        ["up{job=\"binlog-tailer\"}"]
    );
    assert_eq!(
        condition_operands(
            "sum by (job, instance, kind) (increase(binlog_tailer_publish_errors_total[5m])) > 0"
        ),
        ["sum by (job, instance, kind) (increase(binlog_tailer_publish_errors_total[5m]))"]
    );
    assert_eq!(
        condition_operands(
            "a > 600 and on (instance) (b > 0 or c > bool 1e9 or increase(d[10m]) > 0) \
             unless e == 1"
        ),
        ["a", "b", "c", "increase(d[10m])", "e"]
    );
    // A comparison between two series is kept whole; labels that look like
    // operators are not operators.
    assert_eq!(condition_operands("a > b"), ["a > b"]);
    assert_eq!(
        condition_operands("x{mode=\"a>b\", operation=\"or\"} < 3"),
        ["x{mode=\"a>b\", operation=\"or\"}"]
    );
    assert_eq!(
        condition_operands(
            "binlog_tailer_lag_transactions > 0 \
             and rate(binlog_tailer_transactions_total[5m]) == 0"
        ),
        [
            "binlog_tailer_lag_transactions",
            "rate(binlog_tailer_transactions_total[5m])"
        ]
    );
}

#[test]
fn a_metric_the_tailer_does_not_export_is_reported() {
    let scrape = "# HELP binlog_tailer_publish_latency_seconds Latency.\n\
                  # TYPE binlog_tailer_publish_latency_seconds histogram\n\
                  binlog_tailer_publish_latency_seconds_bucket{le=\"0.001\"} 0\n\
                  binlog_tailer_publish_latency_seconds_sum 0\n\
                  binlog_tailer_publish_latency_seconds_count 0\n\
                  # TYPE binlog_tailer_events_published_total counter\n\
                  binlog_tailer_events_published_total{topic=\"t\"} 3\n";
    let dashboard = r#"{
        "expr": "sum(rate(binlog_tailer_events_published_total[1m]))
                 / rate(binlog_tailer_publish_latency_seconds_count[1m])",
        "title": "rate(binlog_tailer_publish_latency_seconds_bucket[1m])",
        "typo": "binlog_tailer_event_published_total",
        "not_a_name": "my_binlog_tailer_x"
    }"#;
    let used = metric_names(dashboard);
    assert_eq!(
        used,
        BTreeSet::from(
            [
                "binlog_tailer_events_published_total",
                "binlog_tailer_publish_latency_seconds_count",
                "binlog_tailer_publish_latency_seconds_bucket",
                "binlog_tailer_event_published_total",
            ]
            .map(str::to_owned)
        )
    );
    assert_eq!(
        unexported(&used, &exported_names(scrape)),
        ["binlog_tailer_event_published_total"]
    );
}
