//! Declared reductions of answers whose raw bytes legitimately differ between servers and
//! runs, so that what is left can be compared exactly.
//!
//! * **Snapshot stream** (`summary: snapshot` on a `recv`): the stream is read to its end
//!   and reduced to a [`snapshot`] summary. The database bytes themselves are not
//!   compared (their layout is the server's own); their framing is: how many data
//!   messages, their total length, the chunk sizes (etcd sends 32 KiB chunks, the last one
//!   partial), `remaining_bytes` counting down to 0, and a final message whose blob is the
//!   32-byte SHA-256 of all the data with `remaining_bytes` 0.
//! * **Prometheus text** (`metrics: [...]` on an `http` step): parsed into
//!   `{family: {type, samples: {"name{labels}": value}}}` for the listed families only
//!   ([`metrics`]); the help text and every other family are ignored, values are then
//!   matched by the normal rules (numbers by type).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

/// etcd's snapshot chunk size (`snapshotSendBufferSize`).
pub const SNAPSHOT_CHUNK: usize = 32 * 1024;

/// The one summary kind a transcript may name.
pub const SNAPSHOT: &str = "snapshot";

fn blob_bytes(msg: &Value) -> Vec<u8> {
    use base64::Engine as _;
    match msg.get("blob").and_then(Value::as_str) {
        Some(s) => match s.strip_prefix("base64:") {
            Some(b) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .unwrap_or_default(),
            None => s.as_bytes().to_vec(),
        },
        None => Vec::new(),
    }
}

fn remaining(msg: &Value) -> u64 {
    msg.get("remaining_bytes")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Summarises the messages of a `Maintenance/Snapshot` stream (decoded protobuf-JSON,
/// bytes as text or `base64:`).
///
/// The result has `data_messages`, `data_bytes`, `chunks` (`"32768 bytes each, the last
/// 1..=32768"` when they are, else the list of lengths), `remaining_bytes` (`"counts down
/// to 0"` when each data message carries the bytes still to come, else the list),
/// `checksum` (`remaining_bytes`, `blob_bytes`, `sha256_of_data` of the last message),
/// `fields` (every field name seen in the data messages) and `header` (the first
/// message's, if any).
pub fn snapshot(messages: &[Value]) -> Value {
    let (data, last) = match messages.split_last() {
        Some((last, data)) => (data, Some(last)),
        None => (messages, None),
    };
    let blobs: Vec<Vec<u8>> = data.iter().map(blob_bytes).collect();
    let total: usize = blobs.iter().map(Vec::len).sum();
    let lens: Vec<usize> = blobs.iter().map(Vec::len).collect();
    let chunked = lens.split_last().is_some_and(|(last, rest)| {
        rest.iter().all(|l| *l == SNAPSHOT_CHUNK) && (1..=SNAPSHOT_CHUNK).contains(last)
    });
    let chunks = if chunked {
        json!(format!(
            "{SNAPSHOT_CHUNK} bytes each, the last 1..={SNAPSHOT_CHUNK}"
        ))
    } else {
        json!(lens)
    };
    let mut sent = 0usize;
    let mut counts_down = !data.is_empty();
    let mut remainders = Vec::new();
    for (msg, len) in data.iter().zip(&lens) {
        sent += len;
        let r = remaining(msg);
        remainders.push(r);
        if r != (total - sent) as u64 {
            counts_down = false;
        }
    }
    let remaining_bytes = if counts_down {
        json!("counts down to 0")
    } else {
        json!(remainders)
    };
    let checksum = last.map(|m| {
        let blob = blob_bytes(m);
        let mut h = Sha256::new();
        for b in &blobs {
            h.update(b);
        }
        let digest = h.finalize();
        json!({
            "remaining_bytes": remaining(m),
            "blob_bytes": blob.len(),
            "sha256_of_data": blob.as_slice() == digest.as_slice(),
        })
    });
    let mut fields: Vec<String> = data
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|o| o.keys().cloned())
        .collect();
    fields.sort();
    fields.dedup();
    let mut out = Map::new();
    out.insert("data_messages".into(), json!(data.len()));
    out.insert("data_bytes".into(), json!(total));
    out.insert("chunks".into(), chunks);
    out.insert("remaining_bytes".into(), remaining_bytes);
    out.insert("checksum".into(), checksum.unwrap_or(Value::Null));
    out.insert("fields".into(), json!(fields));
    if let Some(h) = messages.first().and_then(|m| m.get("header")) {
        out.insert("header".into(), h.clone());
    }
    Value::Object(out)
}

/// Splits `name{a="x",b="y"} value [timestamp]` into the sample name with labels and
/// the value text.
fn sample_line(line: &str) -> Option<(&str, &str)> {
    let split = match line.rfind('}') {
        Some(close) => close + 1,
        None => line.find(char::is_whitespace)?,
    };
    let (name, rest) = line.split_at(split);
    let value = rest.split_whitespace().next()?;
    Some((name.trim(), value))
}

fn family_of(sample: &str) -> &str {
    sample.split('{').next().unwrap_or(sample)
}

fn number(text: &str) -> Value {
    match text {
        "+Inf" | "-Inf" | "NaN" => Value::String(text.to_owned()),
        _ => text
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| text.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(text.to_owned())),
    }
}

/// Parses Prometheus text exposition into `{family: {type, samples}}` for `wanted`
/// families (histogram and summary samples `_bucket`, `_sum`, `_count` belong to their
/// family). Families not exposed are left out, so the comparison reports them absent.
pub fn metrics(text: &str, wanted: &[String]) -> Value {
    let mut types: BTreeMap<&str, &str> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                types.insert(name, kind);
            }
        }
    }
    let mut out = Map::new();
    for family in wanted {
        let Some(kind) = types.get(family.as_str()) else {
            continue;
        };
        let mut samples = Map::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((sample, value)) = sample_line(line) else {
                continue;
            };
            let base = family_of(sample);
            let belongs = base == family
                || (matches!(*kind, "histogram" | "summary")
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| base.strip_suffix(s) == Some(family.as_str())));
            if belongs {
                samples.insert(sample.to_owned(), number(value));
            }
        }
        out.insert(
            family.clone(),
            json!({"type": kind, "samples": Value::Object(samples)}),
        );
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(data: &[u8]) -> String {
        use base64::Engine as _;
        format!(
            "base64:{}",
            base64::engine::general_purpose::STANDARD.encode(data)
        )
    }

    fn stream(data: &[u8], chunk: usize, digest_ok: bool) -> Vec<Value> {
        let mut out = Vec::new();
        let mut sent = 0;
        for c in data.chunks(chunk) {
            sent += c.len();
            out.push(json!({"blob": b64(c), "remaining_bytes": data.len() - sent}));
        }
        let mut digest = Sha256::digest(data).to_vec();
        if !digest_ok {
            digest[0] ^= 1;
        }
        out.push(json!({"blob": b64(&digest)}));
        out
    }

    #[test]
    fn a_well_framed_snapshot_summarises_to_the_etcd_shape() {
        let data = vec![7u8; SNAPSHOT_CHUNK * 2 + 100];
        let s = snapshot(&stream(&data, SNAPSHOT_CHUNK, true));
        assert_eq!(s["data_messages"], 3);
        assert_eq!(s["data_bytes"], SNAPSHOT_CHUNK * 2 + 100);
        assert_eq!(s["chunks"], "32768 bytes each, the last 1..=32768");
        assert_eq!(s["remaining_bytes"], "counts down to 0");
        assert_eq!(
            s["checksum"],
            json!({"remaining_bytes": 0, "blob_bytes": 32, "sha256_of_data": true})
        );
        assert_eq!(s["fields"], json!(["blob", "remaining_bytes"]));
    }

    #[test]
    fn bad_framing_shows_in_the_summary() {
        let data = vec![1u8; 5000];
        let s = snapshot(&stream(&data, 1000, false));
        assert_eq!(s["chunks"], json!([1000, 1000, 1000, 1000, 1000]));
        assert_eq!(s["checksum"]["sha256_of_data"], false);
        let mut msgs = stream(&data, SNAPSHOT_CHUNK, true);
        msgs[0]["remaining_bytes"] = json!(1);
        assert_eq!(snapshot(&msgs)["remaining_bytes"], json!([1]));
    }

    #[test]
    fn metrics_keep_the_listed_families_with_their_samples() {
        let text = "# HELP a_total help\n# TYPE a_total counter\na_total 3\n\
                    # TYPE h_seconds histogram\nh_seconds_bucket{le=\"0.5\"} 1\n\
                    h_seconds_bucket{le=\"+Inf\"} 2\nh_seconds_sum 0.25\nh_seconds_count 2\n\
                    # TYPE v gauge\nv{version=\"1 2\"} 1\n# TYPE other gauge\nother 9\n";
        let wanted: Vec<String> = ["a_total", "h_seconds", "v", "missing"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let m = metrics(text, &wanted);
        assert_eq!(
            m["a_total"],
            json!({"type": "counter", "samples": {"a_total": 3}})
        );
        assert_eq!(m["h_seconds"]["type"], "histogram");
        assert_eq!(m["h_seconds"]["samples"]["h_seconds_sum"], 0.25);
        assert_eq!(m["h_seconds"]["samples"].as_object().map(Map::len), Some(4));
        assert_eq!(m["v"]["samples"]["v{version=\"1 2\"}"], 1);
        assert!(m.get("missing").is_none());
        assert!(m.get("other").is_none());
    }
}
