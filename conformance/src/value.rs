//! Normalisation and matching of recorded values.
//!
//! A transcript stores what etcd 3.4.23 answered, with the few values that legitimately
//! differ between runs replaced by tokens. The full, documented list:
//!
//! | token | meaning at replay |
//! |---|---|
//! | `R+k` / `R-k` | a v3 revision: the transcript's base revision plus `k` |
//! | `V+k` | a v2 store index: the transcript's base v2 index plus `k` |
//! | `$name` | a captured server-generated ID (cluster, member, lease ≥ 2^24, auth token): bound on first sight, equal afterwards; a `$jwtN` must also be a JSON Web Token (three base64url parts, the first a JSON header naming its `alg`) |
//! | `{$name:x}` / `{$name}` inside a string | the variable's value in lower-case hex (lock/election keys, v2 member ids) / in decimal (alarm texts in `Status.errors`) |
//! | `{endpoint}` inside a string | the client URL under test |
//! | `{V+k}`, `{V+k:20}`, `{R+k}` inside a string | a v2 index / revision in text (v2 error causes; in-order key names, zero-padded to 20 digits) |
//! | `{repeat:N:s}` inside a string | `s` repeated `N` times (large values; recording writes any run of 64 or more equal characters this way) |
//! | `~int` / `~int[a..b]` / `~int[a..]` | any integer (e.g. raft term, db size) / an integer in `a..=b` (TTL countdowns) / at least `a` |
//! | `~number` | any JSON number (metric sample values) |
//! | `~string` / `~timestamp` | any string / an RFC 3339 timestamp |
//! | `~b64:text` | the base64 of `text` after `{...}` expansion (JSON-gateway lock/election keys holding a lease ID) |
//!
//! Besides tokens, two ordering rules: the `keys` of a `LeaseTimeToLive` answer (which
//! etcd lists in hash-map order) are sorted before recording and comparing, and so are
//! member lists (ordered by random member ID; started members first, then peer URLs). Several
//! messages on one stream may be matched in any order where a step says so
//! (`messages: N`). Everything else, error codes and messages included, must match exactly. The same
//! tokens may be used in requests (`R+k`, `V+k`, `$name`, `{...}` interpolation).

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};

/// Per-transcript state that relates recorded tokens to this run's concrete values.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// Revision of the store when the transcript started (`R+0`).
    pub base_rev: i64,
    /// v2 store index when the transcript started (`V+0`).
    pub base_v2: i64,
    /// Captured variables (decimal text for numbers).
    pub vars: BTreeMap<String, String>,
    /// The client URL under test, e.g. `http://127.0.0.1:2379`.
    pub endpoint: String,
}

/// One difference found by [`compare`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// JSON path of the differing value, e.g. `.kvs[0].value`.
    pub path: String,
    /// What the transcript expected (with tokens).
    pub expected: String,
    /// What the endpoint answered.
    pub got: String,
}

impl std::fmt::Display for Diff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: expected {}, got {}",
            self.path, self.expected, self.got
        )
    }
}

/// Integer view of a JSON number or numeric string.
pub fn as_int(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        Value::String(s) => s.parse::<i128>().ok(),
        _ => None,
    }
}

fn parse_offset(s: &str, letter: char) -> Option<i64> {
    let rest = s.strip_prefix(letter)?;
    let (sign, digits) = if let Some(d) = rest.strip_prefix('+') {
        (1, d)
    } else if let Some(d) = rest.strip_prefix('-') {
        (-1, d)
    } else {
        return None;
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok().map(|k| sign * k)
}

fn var_name(s: &str) -> Option<&str> {
    let name = s.strip_prefix('$')?;
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then_some(name)
}

fn relative(s: &str, v: i64) -> String {
    if v >= 0 {
        format!("{s}+{v}")
    } else {
        format!("{s}{v}")
    }
}

impl Env {
    /// Expands `{$name}`, `{$name:x}` and `{endpoint}` inside a string.
    pub fn expand(&self, s: &str) -> Result<String> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            let inner = &rest[start + 1..start + len];
            out.push_str(&rest[..start]);
            if inner == "endpoint" {
                out.push_str(&self.endpoint);
            } else if let Some((n, text)) = inner
                .strip_prefix("repeat:")
                .and_then(|r| r.split_once(':'))
                .and_then(|(n, t)| n.parse::<usize>().ok().map(|n| (n, t)))
            {
                out.push_str(&text.repeat(n));
            } else if let Some(k) = parse_offset(inner, 'V')
                .or_else(|| inner.strip_suffix(":20").and_then(|x| parse_offset(x, 'V')))
            {
                if inner.ends_with(":20") {
                    out.push_str(&format!("{:020}", self.base_v2 + k));
                } else {
                    out.push_str(&(self.base_v2 + k).to_string());
                }
            } else if let Some(k) = parse_offset(inner, 'R') {
                out.push_str(&(self.base_rev + k).to_string());
            } else if let Some(name) = inner.strip_prefix('$') {
                let (name, hex) = match name.strip_suffix(":x") {
                    Some(n) => (n, true),
                    None => (name, false),
                };
                let value = self
                    .vars
                    .get(name)
                    .with_context(|| format!("variable ${name} used before it was captured"))?;
                if hex {
                    let n: u64 = value
                        .parse()
                        .with_context(|| format!("${name} is not numeric"))?;
                    out.push_str(&format!("{n:x}"));
                } else {
                    out.push_str(value);
                }
            } else {
                out.push_str(&rest[start..=start + len]);
            }
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn var_json(&self, name: &str) -> Result<Value> {
        let v = self
            .vars
            .get(name)
            .ok_or_else(|| anyhow!("variable ${name} used before it was captured"))?;
        Ok(if let Ok(n) = v.parse::<i64>() {
            Value::from(n)
        } else if let Ok(n) = v.parse::<u64>() {
            Value::from(n)
        } else {
            Value::String(v.clone())
        })
    }

    /// Replaces tokens in a request by this run's concrete values.
    pub fn substitute(&self, v: &Value) -> Result<Value> {
        Ok(match v {
            Value::String(s) => {
                if let Some(k) = parse_offset(s, 'R') {
                    Value::from(self.base_rev + k)
                } else if let Some(k) = parse_offset(s, 'V') {
                    Value::from(self.base_v2 + k)
                } else if let Some(name) = var_name(s) {
                    self.var_json(name)?
                } else {
                    Value::String(self.expand(s)?)
                }
            }
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|x| self.substitute(x))
                    .collect::<Result<_>>()?,
            ),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| Ok((k.clone(), self.substitute(x)?)))
                    .collect::<Result<Map<_, _>>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Text form of a request value for query strings, form fields and headers.
    pub fn substitute_text(&self, s: &str) -> Result<String> {
        match self.substitute(&Value::String(s.to_owned()))? {
            Value::String(s) => Ok(s),
            other => Ok(other.to_string()),
        }
    }

    fn bind(&mut self, name: &str, got: &Value) -> bool {
        let text = match got {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return false,
        };
        match self.vars.get(name) {
            Some(existing) => *existing == text,
            None => {
                self.vars.insert(name.to_owned(), text);
                true
            }
        }
    }

    fn var_for_value(&mut self, prefix: &str, value: &str) -> String {
        if let Some((name, _)) = self.vars.iter().find(|(_, v)| v.as_str() == value) {
            return name.clone();
        }
        let n = (1..)
            .find(|i| !self.vars.contains_key(&format!("{prefix}{i}")))
            .unwrap_or(1);
        let name = if prefix == "cluster" && !self.vars.contains_key("cluster") {
            "cluster".to_owned()
        } else {
            format!("{prefix}{n}")
        };
        self.vars.insert(name.clone(), value.to_owned());
        name
    }
}

/// IDs below this are kept literally (they were chosen by the request, e.g. a lease
/// granted with an explicit ID); server-generated IDs are far larger.
const MIN_CAPTURED_ID: i128 = 1 << 24;

/// How a recorded field is normalised (chosen at record time; replay only sees tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Rev,
    V2Index,
    Var(&'static str),
    HexVar(&'static str),
    AnyInt,
    AnyString,
    Timestamp,
    UpTo(i64),
    AnyNumber,
    AtLeast(i64),
}

fn rule_for(ctx: &str, parent: &Map<String, Value>, field: &str, value: &Value) -> Option<Rule> {
    let lease_ctx = ctx.contains("Lease") || ctx.contains("/lease/");
    let member_like = parent.contains_key("peerURLs") || parent.contains_key("clientURLs");
    let started_member = parent.contains_key("clientURLs");
    let stats = ctx.contains("/v2/stats");
    let v2_members = ctx.contains("/v2/members");
    if ctx.ends_with(" summary") && matches!(field, "data_messages" | "data_bytes") {
        // The database size is the server's own; only that there is data is compared.
        return Some(Rule::AtLeast(1));
    }
    if ctx.contains("/v2/stats/store") && value.is_number() {
        return Some(Rule::AnyInt);
    }
    if ctx.contains("/metrics") && value.is_number() {
        // Leadership of a single member is fixed; every other sample is a measurement.
        let fixed = [
            "etcd_server_has_leader",
            "etcd_server_is_leader",
            "etcd_server_is_learner",
        ];
        return (!fixed.contains(&field)).then_some(Rule::AnyNumber);
    }
    Some(match field {
        "compact_revision" if ctx.contains("HashKV") || ctx.contains("hash") => Rule::AnyInt,
        "revision"
        | "create_revision"
        | "mod_revision"
        | "start_revision"
        | "compact_revision"
        | "rev"
        | "hash_revision"
        | "min_mod_revision"
        | "max_mod_revision"
        | "min_create_revision"
        | "max_create_revision" => Rule::Rev,
        "modifiedIndex" | "createdIndex" | "index" | "X-Etcd-Index" => Rule::V2Index,
        "raft_term"
        | "raftTerm"
        | "raftIndex"
        | "raftAppliedIndex"
        | "dbSize"
        | "dbSizeInUse"
        | "hash"
        | "X-Raft-Index"
        | "X-Raft-Term"
        | "recvAppendRequestCnt"
        | "sendAppendRequestCnt"
        | "recvPkgRate"
        | "recvBandwidthRate"
        | "sendPkgRate"
        | "sendBandwidthRate" => Rule::AnyInt,
        "cluster_id" => Rule::Var("cluster"),
        "X-Etcd-Cluster-Id" => Rule::HexVar("cluster"),
        "member_id" | "memberID" | "leader" if !stats => Rule::Var("member"),
        "leader" | "id" if stats || v2_members => Rule::HexVar("member"),
        "ID" if member_like || ctx.contains("Member") || ctx.contains("/member/") => {
            Rule::Var("member")
        }
        "ID" | "lease" if lease_ctx || field == "lease" => Rule::Var("lease"),
        "token" if value.as_str().is_some_and(is_jwt) => Rule::Var("jwt"),
        "token" => Rule::Var("token"),
        "TTL" if ctx.contains("TimeToLive") || ctx.contains("timetolive") => {
            let granted = parent.get("grantedTTL").and_then(as_int).unwrap_or(0);
            match as_int(value) {
                Some(t) if t >= 0 => Rule::UpTo(i64::try_from(granted).unwrap_or(0)),
                _ => return None,
            }
        }
        "ttl" => Rule::UpTo(
            as_int(value)
                .and_then(|t| i64::try_from(t).ok())
                .unwrap_or(0),
        ),
        "expiration" | "startTime" => Rule::Timestamp,
        "uptime" => Rule::AnyString,
        "name" | "peerURLs" if started_member || stats => Rule::AnyString,
        _ => return None,
    })
}

fn apply_rule(rule: Rule, v: &Value, env: &mut Env) -> Value {
    let zero = as_int(v) == Some(0);
    match rule {
        Rule::Rev if !zero => match as_int(v) {
            Some(n) => Value::String(relative("R", (n as i64) - env.base_rev)),
            None => v.clone(),
        },
        Rule::V2Index if !zero => match as_int(v) {
            Some(n) => Value::String(relative("V", (n as i64) - env.base_v2)),
            None => v.clone(),
        },
        Rule::Var(prefix) if !zero && as_int(v).is_none_or(|n| n.abs() >= MIN_CAPTURED_ID) => {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return v.clone(),
            };
            Value::String(format!("${}", env.var_for_value(prefix, &text)))
        }
        Rule::HexVar(prefix) => match v.as_str().and_then(|s| u64::from_str_radix(s, 16).ok()) {
            Some(n) => Value::String(format!(
                "{{${}:x}}",
                env.var_for_value(prefix, &n.to_string())
            )),
            None => v.clone(),
        },
        Rule::AnyInt if as_int(v).is_some() => Value::String("~int".into()),
        Rule::AnyString => match v {
            Value::Array(a) => {
                Value::Array(a.iter().map(|_| Value::String("~string".into())).collect())
            }
            _ => Value::String("~string".into()),
        },
        Rule::Timestamp if v.is_string() => Value::String("~timestamp".into()),
        Rule::UpTo(max) if as_int(v).is_some() => Value::String(format!("~int[0..{max}]")),
        Rule::AnyNumber if v.is_number() => Value::String("~number".into()),
        Rule::AtLeast(min) if as_int(v).is_some() => Value::String(format!("~int[{min}..]")),
        _ => v.clone(),
    }
}

/// Record-time normalisation of an answer: applies the rules, then replaces the endpoint
/// URL and the hex form of known IDs inside strings.
pub fn normalize(v: &Value, ctx: &str, env: &mut Env) -> Value {
    let ruled = normalize_rules(v, ctx, env);
    interpolate_strings(&ruled, env)
}

fn normalize_rules(v: &Value, ctx: &str, env: &mut Env) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                let rule = if x.is_object() {
                    None
                } else {
                    rule_for(ctx, m, k, x)
                };
                let nv = match rule {
                    Some(rule) => match x {
                        Value::Array(a) if rule != Rule::AnyString => {
                            Value::Array(a.iter().map(|e| apply_rule(rule, e, env)).collect())
                        }
                        _ => apply_rule(rule, x, env),
                    },
                    None => normalize_rules(x, ctx, env),
                };
                out.insert(k.clone(), nv);
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| normalize_rules(x, ctx, env)).collect()),
        other => other.clone(),
    }
}

/// Replaces decimal v2 indexes inside a string: a trailing 20-digit in-order key name
/// becomes `{V+k:20}`; with `all_numbers`, every number >= the base becomes `{V+k}`.
fn v2_index_text(s: &str, env: &Env, all_numbers: bool) -> String {
    let mut out = String::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let digits = &s[start..i];
            let n = digits.parse::<i64>().ok();
            match n {
                Some(n)
                    if digits.len() == 20
                        && i == bytes.len()
                        && start > 0
                        && bytes[start - 1] == b'/' =>
                {
                    out.push_str(&format!("{{{}:20}}", relative("V", n - env.base_v2)));
                }
                Some(n) if all_numbers && n >= env.base_v2 && env.base_v2 > 0 => {
                    out.push_str(&format!("{{{}}}", relative("V", n - env.base_v2)));
                }
                _ => out.push_str(digits),
            }
        } else {
            let ch = s[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn interpolate_strings(v: &Value, env: &Env) -> Value {
    match v {
        Value::Object(m)
            if m.contains_key("errorCode")
                || m.contains_key("createdIndex")
                || m.contains_key("nodes") =>
        {
            Value::Object(
                m.iter()
                    .map(|(k, x)| {
                        let nx = match (k.as_str(), x) {
                            ("cause", Value::String(s)) => {
                                Value::String(v2_index_text(s, env, true))
                            }
                            ("key", Value::String(s)) => {
                                Value::String(v2_index_text(s, env, false))
                            }
                            _ => interpolate_strings(x, env),
                        };
                        (k.clone(), nx)
                    })
                    .collect(),
            )
        }
        Value::String(s) if !is_token(s) => {
            if let Some(t) = base64_with_var(s, env) {
                return Value::String(t);
            }
            if let Some(r) = repeated_char(s) {
                return Value::String(r);
            }
            let mut s = s.replace(&env.endpoint, "{endpoint}");
            for (name, value) in &env.vars {
                if let Ok(n) = value.parse::<u64>() {
                    let dec = n.to_string();
                    if dec.len() >= 8 && s.contains(&dec) {
                        s = s.replace(&dec, &format!("{{${name}}}"));
                    }
                    let hex = format!("{n:x}");
                    if hex.len() >= 8 && s.contains(&hex) {
                        s = s.replace(&hex, &format!("{{${name}:x}}"));
                    }
                }
            }
            Value::String(s)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| interpolate_strings(x, env)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), interpolate_strings(x, env)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A long run of one character, written `{repeat:N:c}` (large values stay readable).
fn repeated_char(s: &str) -> Option<String> {
    let mut chars = s.chars();
    let first = chars.next()?;
    let n = s.chars().count();
    (n >= 64 && first.is_ascii_alphanumeric() && chars.all(|c| c == first))
        .then(|| format!("{{repeat:{n}:{first}}}"))
}

/// A JSON-gateway base64 value whose text contains a captured ID in hex (a lock or
/// election key): recorded as `~b64:<text with {$name:x}>`.
fn base64_with_var(s: &str, env: &Env) -> Option<String> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    let text = String::from_utf8(raw).ok()?;
    if text.chars().any(char::is_control) {
        return None;
    }
    let mut out = text.clone();
    for (name, value) in &env.vars {
        if let Ok(n) = value.parse::<u64>() {
            let hex = format!("{n:x}");
            if hex.len() >= 8 {
                out = out.replace(&hex, &format!("{{${name}:x}}"));
            }
        }
    }
    (out != text).then(|| format!("~b64:{out}"))
}

fn is_token(s: &str) -> bool {
    parse_offset(s, 'R').is_some()
        || parse_offset(s, 'V').is_some()
        || var_name(s).is_some()
        || s.starts_with('~')
}

fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 200 {
        format!("{}…", &s[..s.floor_char_boundary(200)])
    } else {
        s
    }
}

fn int_range(spec: &str) -> Result<(i128, i128)> {
    let inner = spec
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| anyhow!("bad range {spec}"))?;
    let (a, b) = inner
        .split_once("..")
        .ok_or_else(|| anyhow!("bad range {spec}"))?;
    let hi = if b.trim().is_empty() {
        i128::MAX
    } else {
        b.trim().parse()?
    };
    Ok((a.trim().parse()?, hi))
}

/// A JSON Web Token: three base64url parts, the first a JSON object naming its `alg`.
pub fn is_jwt(s: &str) -> bool {
    use base64::Engine as _;
    let parts: Vec<&str> = s.split('.').collect();
    let b64url = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if parts.len() != 3 || !parts.iter().all(|p| b64url(p)) {
        return false;
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[0])
        .ok()
        .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
        .is_some_and(|h| h.get("alg").is_some_and(Value::is_string))
}

fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':'
}

/// Compares an expected (tokenised) value with an answer, binding variables in `env`.
pub fn compare(expected: &Value, got: &Value, env: &mut Env, path: &str, diffs: &mut Vec<Diff>) {
    let mut fail = |env: &Env, exp: String| {
        let _ = env;
        diffs.push(Diff {
            path: if path.is_empty() {
                ".".into()
            } else {
                path.into()
            },
            expected: exp,
            got: show(got),
        });
    };
    match expected {
        Value::String(s) => {
            if let Some(k) = parse_offset(s, 'R') {
                if as_int(got) != Some(i128::from(env.base_rev + k)) {
                    fail(env, format!("{s} (= {})", env.base_rev + k));
                }
            } else if let Some(k) = parse_offset(s, 'V') {
                if as_int(got) != Some(i128::from(env.base_v2 + k)) {
                    fail(env, format!("{s} (= {})", env.base_v2 + k));
                }
            } else if let Some(name) = var_name(s) {
                if name.starts_with("jwt") && !got.as_str().is_some_and(is_jwt) {
                    fail(env, format!("{s} (a JSON Web Token)"));
                } else if !env.bind(name, got) {
                    let now = env.vars.get(name).cloned().unwrap_or_default();
                    fail(env, format!("{s} (= {now})"));
                }
            } else if let Some(m) = s.strip_prefix("~int") {
                let ok = match as_int(got) {
                    Some(n) if m.is_empty() => {
                        let _ = n;
                        true
                    }
                    Some(n) => int_range(m).map(|(a, b)| a <= n && n <= b).unwrap_or(false),
                    None => false,
                };
                if !ok {
                    fail(env, s.clone());
                }
            } else if let Some(text) = s.strip_prefix("~b64:") {
                use base64::Engine as _;
                match env.expand(text) {
                    Ok(want) => {
                        let want = base64::engine::general_purpose::STANDARD.encode(want);
                        if got.as_str() != Some(want.as_str()) {
                            fail(env, format!("{s} (= {want})"));
                        }
                    }
                    Err(e) => fail(env, format!("{s} ({e})")),
                }
            } else if s == "~number" {
                if !got.is_number() {
                    fail(env, s.clone());
                }
            } else if s == "~string" {
                if !got.is_string() {
                    fail(env, s.clone());
                }
            } else if s == "~timestamp" {
                if !got.as_str().is_some_and(is_timestamp) {
                    fail(env, s.clone());
                }
            } else if let Some(name) = s
                .strip_prefix("{$")
                .and_then(|r| r.strip_suffix(":x}"))
                .filter(|n| !env.vars.contains_key(*n))
            {
                let ok = got
                    .as_str()
                    .and_then(|g| u64::from_str_radix(g, 16).ok())
                    .map(|n| env.bind(name, &Value::from(n)))
                    .unwrap_or(false);
                if !ok {
                    fail(env, s.clone());
                }
            } else {
                match env.expand(s) {
                    Ok(want) if got.as_str() == Some(want.as_str()) => {}
                    Ok(want) => fail(env, show(&Value::String(want))),
                    Err(e) => fail(env, format!("{s} ({e})")),
                }
            }
        }
        Value::Object(em) => {
            let Some(gm) = got.as_object() else {
                fail(env, show(expected));
                return;
            };
            let mut keys: Vec<&String> = em.keys().chain(gm.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = format!("{path}.{k}");
                match (em.get(k), gm.get(k)) {
                    (Some(e), Some(g)) => compare(e, g, env, &p, diffs),
                    (Some(e), None) => diffs.push(Diff {
                        path: p,
                        expected: show(e),
                        got: "(absent)".into(),
                    }),
                    (None, Some(g)) => diffs.push(Diff {
                        path: p,
                        expected: "(absent)".into(),
                        got: show(g),
                    }),
                    (None, None) => {}
                }
            }
        }
        Value::Array(ea) => {
            let Some(ga) = got.as_array() else {
                fail(env, show(expected));
                return;
            };
            if ea.len() != ga.len() {
                diffs.push(Diff {
                    path: format!("{path} (length)"),
                    expected: format!("{} items: {}", ea.len(), show(expected)),
                    got: format!("{} items: {}", ga.len(), show(got)),
                });
                return;
            }
            for (i, (e, g)) in ea.iter().zip(ga).enumerate() {
                compare(e, g, env, &format!("{path}[{i}]"), diffs);
            }
        }
        Value::Number(_) => {
            if as_int(expected).is_some() && got.is_number() {
                if as_int(expected) != as_int(got) {
                    fail(env, show(expected));
                }
            } else if expected != got {
                fail(env, show(expected));
            }
        }
        _ => {
            if expected != got {
                fail(env, show(expected));
            }
        }
    }
}

/// Parses `R+k`-style tokens for tests and tools.
pub fn check_token_syntax(s: &str) -> Result<()> {
    if s.starts_with('~')
        && !(s == "~string" || s == "~timestamp" || s == "~number" || s.starts_with("~int"))
    {
        bail!("unknown matcher {s}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env() -> Env {
        Env {
            base_rev: 100,
            base_v2: 50,
            endpoint: "http://127.0.0.1:9".into(),
            ..Env::default()
        }
    }

    fn diffs(exp: Value, got: Value, env: &mut Env) -> Vec<Diff> {
        let mut d = Vec::new();
        compare(&exp, &got, env, "", &mut d);
        d
    }

    #[test]
    fn relative_revisions_match_only_the_offset() {
        let mut e = env();
        assert!(diffs(json!({"revision": "R+3"}), json!({"revision": 103}), &mut e).is_empty());
        assert!(
            diffs(
                json!({"revision": "R+3"}),
                json!({"revision": "103"}),
                &mut e
            )
            .is_empty()
        );
        let d = diffs(json!({"revision": "R+3"}), json!({"revision": 104}), &mut e);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, ".revision");
    }

    #[test]
    fn variables_bind_once_then_must_be_equal() {
        let mut e = env();
        assert!(diffs(json!("$lease1"), json!(123456789), &mut e).is_empty());
        assert!(diffs(json!("$lease1"), json!(123456789), &mut e).is_empty());
        assert_eq!(diffs(json!("$lease1"), json!(987654321), &mut e).len(), 1);
        assert!(diffs(json!("/l/{$lease1:x}"), json!("/l/75bcd15"), &mut e).is_empty());
    }

    #[test]
    fn matchers_check_type_and_range() {
        let mut e = env();
        assert!(diffs(json!("~int"), json!(7), &mut e).is_empty());
        assert_eq!(diffs(json!("~int"), json!("x"), &mut e).len(), 1);
        assert!(diffs(json!("~int[0..10]"), json!(10), &mut e).is_empty());
        assert_eq!(diffs(json!("~int[0..10]"), json!(11), &mut e).len(), 1);
        assert!(diffs(json!("~timestamp"), json!("2026-01-01T00:00:00.5Z"), &mut e).is_empty());
        assert!(diffs(json!("~int[3..]"), json!(300000), &mut e).is_empty());
        assert_eq!(diffs(json!("~int[3..]"), json!(2), &mut e).len(), 1);
        assert!(diffs(json!("~number"), json!(0.25), &mut e).is_empty());
        assert_eq!(diffs(json!("~number"), json!("0.25"), &mut e).len(), 1);
    }

    #[test]
    fn jwt_variables_must_hold_a_json_web_token() {
        let mut e = env();
        let jwt = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VybmFtZSI6InJvb3QifQ.c2ln";
        assert!(is_jwt(jwt));
        let n = normalize(&json!({"token": jwt}), "Auth/Authenticate", &mut e);
        assert_eq!(n["token"], "$jwt1");
        assert!(diffs(json!("$jwt1"), json!(jwt), &mut e).is_empty());
        let mut fresh = env();
        assert_eq!(
            diffs(json!("$jwt1"), json!("SimpleToken.12"), &mut fresh).len(),
            1
        );
        assert!(!is_jwt("a.b.c"));
    }

    #[test]
    fn missing_and_extra_fields_are_differences() {
        let mut e = env();
        let d = diffs(json!({"a": 1}), json!({"b": 1}), &mut e);
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn recording_tokenises_what_varies_and_keeps_the_rest() {
        let mut e = env();
        let got = json!({"header": {"revision": 105, "raft_term": 3, "cluster_id": 99999999999u64},
                         "kvs": [{"key": "k", "mod_revision": 104, "version": 2}]});
        let n = normalize(&got, "KV/Range", &mut e);
        assert_eq!(n["header"]["revision"], "R+5");
        assert_eq!(n["header"]["raft_term"], "~int");
        assert_eq!(n["header"]["cluster_id"], "$cluster");
        assert_eq!(n["kvs"][0]["mod_revision"], "R+4");
        assert_eq!(n["kvs"][0]["version"], 2);
        assert!(diffs(n, got, &mut e).is_empty());
    }

    #[test]
    fn long_runs_of_one_character_are_recorded_as_repeats() {
        let mut e = env();
        let long = "x".repeat(100);
        let n = normalize(&json!({"value": long, "short": "yyyy"}), "KV/Range", &mut e);
        assert_eq!(n["value"], "{repeat:100:x}");
        assert_eq!(n["short"], "yyyy");
        assert!(diffs(n, json!({"value": long, "short": "yyyy"}), &mut e).is_empty());
    }

    #[test]
    fn requests_substitute_tokens() {
        let mut e = env();
        e.vars.insert("lease1".into(), "255".into());
        let r = e
            .substitute(&json!({"revision": "R+2", "lease": "$lease1", "key": "/x/{$lease1:x}", "i": "V+1"}))
            .expect("substitute");
        assert_eq!(
            r,
            json!({"revision": 102, "lease": 255, "key": "/x/ff", "i": 51})
        );
        assert_eq!(
            e.expand("{V+2:20}").expect("expand"),
            "00000000000000000052"
        );
    }
}
