//! Replay summaries: a table per API area, the first differing step of each failing
//! transcript, and known etcd deviations, as text, JSON, Markdown or HTML.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::json;

use crate::runner::TranscriptResult;

/// Per-area totals: (transcripts, steps, passed steps, failed steps, failed transcripts).
pub fn areas(results: &[TranscriptResult]) -> BTreeMap<String, [usize; 5]> {
    let mut m: BTreeMap<String, [usize; 5]> = BTreeMap::new();
    for r in results.iter().filter(|r| r.skipped.is_none()) {
        let e = m.entry(r.area.clone()).or_default();
        e[0] += 1;
        e[1] += r.steps;
        e[2] += r.passed;
        e[3] += r.failed;
        e[4] += usize::from(!r.ok());
    }
    m
}

/// The closing line: `N passed, M failed` (transcripts), plus `, K skipped` when some
/// transcripts needed server flags that a plain endpoint cannot provide.
pub fn last_line(results: &[TranscriptResult]) -> String {
    let failed = results.iter().filter(|r| !r.ok()).count();
    let skipped = results.iter().filter(|r| r.skipped.is_some()).count();
    let line = format!(
        "{} passed, {} failed",
        results.len() - failed - skipped,
        failed
    );
    if skipped == 0 {
        line
    } else {
        format!("{line}, {skipped} skipped")
    }
}

/// Plain text (also the body of the Markdown report).
pub fn text(results: &[TranscriptResult], markdown: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| area | transcripts | steps | passed | failed |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    let mut total = [0usize; 5];
    for (area, c) in areas(results) {
        let _ = writeln!(
            out,
            "| {area} | {} | {} | {} | {} |",
            c[0], c[1], c[2], c[3]
        );
        for (t, x) in total.iter_mut().zip(c) {
            *t += x;
        }
    }
    let _ = writeln!(
        out,
        "| total | {} | {} | {} | {} |",
        total[0], total[1], total[2], total[3]
    );
    let skipped: Vec<_> = results.iter().filter(|r| r.skipped.is_some()).collect();
    if !skipped.is_empty() {
        let _ = writeln!(out, "\nskipped (not counted above):");
        for r in skipped {
            let _ = writeln!(
                out,
                "- {}: {}",
                r.name,
                r.skipped.as_deref().unwrap_or_default()
            );
        }
    }
    let devs: Vec<_> = results
        .iter()
        .flat_map(|r| r.deviations.iter().map(move |d| (r, d)))
        .collect();
    if !devs.is_empty() {
        let _ = writeln!(
            out,
            "\nknown etcd deviations (matched etcd 3.4.23's behaviour, not the corrected one):"
        );
        for (r, (step, issue)) in devs {
            let _ = writeln!(out, "- {} step {step}: {issue}", r.name);
        }
    }
    for r in results.iter().filter(|r| !r.ok()) {
        let Some(f) = &r.first_failure else { continue };
        let fence = if markdown { "```\n" } else { "" };
        let _ = writeln!(
            out,
            "\nFAIL {} (step {} of {}, {} failed)",
            r.name, f.step, r.steps, r.failed
        );
        let _ = write!(
            out,
            "{fence}request:  {}\nexpected:\n{}\ngot:\n{}\n",
            f.request,
            indent(&f.expected),
            indent(&f.got)
        );
        if !f.diffs.is_empty() {
            let _ = writeln!(out, "diff:");
            for d in &f.diffs {
                let _ = writeln!(out, "  {}\n    - {}\n    + {}", d.path, d.expected, d.got);
            }
        }
        out.push_str(fence);
    }
    let _ = writeln!(out, "\n{}", last_line(results));
    out
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Machine-readable form.
pub fn json(results: &[TranscriptResult]) -> String {
    let items: Vec<_> = results
        .iter()
        .map(|r| {
            json!({
                "name": r.name, "area": r.area, "steps": r.steps, "passed": r.passed,
                "failed": r.failed, "skipped": r.skipped,
                "deviations": r.deviations.iter().map(|(s, i)| json!({"step": s, "issue": i})).collect::<Vec<_>>(),
                "first_failure": r.first_failure.as_ref().map(|f| json!({
                    "step": f.step, "request": f.request, "expected": f.expected, "got": f.got,
                    "diffs": f.diffs.iter().map(|d| json!({"path": d.path, "expected": d.expected, "got": d.got})).collect::<Vec<_>>(),
                })),
            })
        })
        .collect();
    let areas: BTreeMap<_, _> = areas(results)
        .into_iter()
        .map(|(a, c)| {
            (
                a,
                json!({"transcripts": c[0], "steps": c[1], "passed": c[2], "failed": c[3]}),
            )
        })
        .collect();
    serde_json::to_string_pretty(
        &json!({"areas": areas, "transcripts": items, "summary": last_line(results)}),
    )
    .unwrap_or_default()
}

/// A standalone HTML page.
pub fn html(results: &[TranscriptResult]) -> String {
    let body = text(results, false)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>etcd conformance</title></head><body><pre>{body}</pre></body></html>\n"
    )
}
