//! Checks of watch streams against the store's event log: each stream must be
//! ordered by revision, free of duplicates and gaps from its start revision up to the
//! last revision it received, and agree with the log on every event.

use std::collections::{BTreeMap, BTreeSet};

use super::history::{WatchEvent, WatchStream};

/// What the watch check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchReport {
    /// Streams checked.
    pub streams: usize,
    /// Events received over all streams.
    pub events: usize,
    /// Events delivered with a revision below an earlier event's.
    pub reorders: usize,
    /// Events delivered twice.
    pub duplicates: usize,
    /// Events of the log a stream skipped (up to the last revision it received).
    pub gaps: usize,
    /// Events that disagree with the log (unknown revision/key or another value).
    pub disagreements: usize,
    /// Streams that had not reached the log's last revision for their prefix.
    pub unfinished: usize,
    /// One line per anomaly (capped).
    pub details: Vec<String>,
}

impl WatchReport {
    /// Anomalies that violate etcd's watch guarantees.
    pub fn anomalies(&self) -> usize {
        self.reorders + self.duplicates + self.gaps + self.disagreements
    }
}

const MAX_DETAILS: usize = 20;

/// Checks every stream against `log` (the complete event history of the keys).
pub fn check_watches(streams: &[WatchStream], log: &[WatchEvent]) -> WatchReport {
    let mut report = WatchReport {
        streams: streams.len(),
        ..WatchReport::default()
    };
    let reference: BTreeMap<(i64, &str), &WatchEvent> = log
        .iter()
        .map(|e| ((e.revision, e.key.as_str()), e))
        .collect();
    let note = |report: &mut WatchReport, s: &WatchStream, what: String| {
        if report.details.len() < MAX_DETAILS {
            report.details.push(format!(
                "watcher {} ({}* from rev {}): {what}",
                s.watcher, s.prefix, s.start_revision
            ));
        }
    };
    for s in streams {
        report.events += s.events.len();
        let mut seen: BTreeSet<(i64, &str)> = BTreeSet::new();
        let mut max_rev = 0i64;
        for e in &s.events {
            if e.revision < max_rev {
                report.reorders += 1;
                note(
                    &mut report,
                    s,
                    format!("rev {} {} after rev {max_rev}", e.revision, e.key),
                );
            }
            max_rev = max_rev.max(e.revision);
            if !seen.insert((e.revision, e.key.as_str())) {
                report.duplicates += 1;
                note(
                    &mut report,
                    s,
                    format!("duplicate rev {} {}", e.revision, e.key),
                );
                continue;
            }
            if e.revision < s.start_revision || !e.key.starts_with(s.prefix.as_str()) {
                report.disagreements += 1;
                note(
                    &mut report,
                    s,
                    format!("rev {} {} is outside the watched range", e.revision, e.key),
                );
                continue;
            }
            match reference.get(&(e.revision, e.key.as_str())) {
                Some(r) if r.value == e.value => {}
                Some(r) => {
                    report.disagreements += 1;
                    note(
                        &mut report,
                        s,
                        format!(
                            "rev {} {}: got {:?}, store has {:?}",
                            e.revision, e.key, e.value, r.value
                        ),
                    );
                }
                None => {
                    report.disagreements += 1;
                    note(
                        &mut report,
                        s,
                        format!("rev {} {}: no such event in the store", e.revision, e.key),
                    );
                }
            }
        }
        let expected: Vec<&WatchEvent> = log
            .iter()
            .filter(|e| e.revision >= s.start_revision && e.key.starts_with(s.prefix.as_str()))
            .collect();
        for e in &expected {
            if e.revision <= max_rev && !seen.contains(&(e.revision, e.key.as_str())) {
                report.gaps += 1;
                note(
                    &mut report,
                    s,
                    format!("missed rev {} {}", e.revision, e.key),
                );
            }
        }
        if expected.last().is_some_and(|e| e.revision > max_rev) {
            report.unfinished += 1;
        }
    }
    report
}
