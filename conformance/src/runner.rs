//! Runs transcripts against an endpoint: `record` fills in the answers, `replay` checks
//! them.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prost_reflect::{DescriptorPool, MessageDescriptor};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

use crate::grpc::{self, RawCodec};
use crate::summary;
use crate::transcript::{Expect, GrpcError, Step, Transcript};
use crate::value::{self, Diff, Env};

/// Headers recorded and compared for HTTP steps.
pub const HEADERS_THAT_MATTER: &[&str] = &[
    "Content-Type",
    "X-Etcd-Cluster-Id",
    "X-Etcd-Index",
    "X-Raft-Index",
    "X-Raft-Term",
];

const UNARY_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_RECV_MS: u64 = 5000;
const DEFAULT_QUIET_MS: u64 = 300;
/// Bound on the messages a `summary` step reads from one stream.
const MAX_STREAM_MESSAGES: usize = 100_000;

/// What a step answered.
#[derive(Debug, Clone)]
enum Got {
    Grpc(std::result::Result<Value, GrpcError>),
    Many(Vec<Value>),
    Http {
        status: u16,
        headers: BTreeMap<String, Value>,
        body: Value,
    },
}

impl Got {
    fn show(&self) -> String {
        match self {
            Got::Grpc(Ok(v)) => format!("response: {v}"),
            Got::Grpc(Err(e)) => format!("error: {} {:?}", e.code, e.message),
            Got::Many(v) => format!("responses: {}", json!(v)),
            Got::Http {
                status,
                headers,
                body,
            } => {
                format!(
                    "status: {status}\nheaders: {}\nbody: {body}",
                    json!(headers)
                )
            }
        }
    }
}

/// Outcome of one step.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Matched the recorded etcd answer (or, with a deviation, the corrected one).
    Pass,
    /// Matched etcd 3.4.23's known-wrong answer (issue named).
    KnownDeviation(String),
    /// Did not match.
    Fail(Failure),
}

/// The first differing step of a failing transcript.
#[derive(Debug, Clone)]
pub struct Failure {
    /// 1-based step number.
    pub step: usize,
    /// The request, as sent.
    pub request: String,
    /// The recorded answer.
    pub expected: String,
    /// What the endpoint answered.
    pub got: String,
    /// Field-by-field differences.
    pub diffs: Vec<Diff>,
}

/// Result of one transcript.
#[derive(Debug, Clone)]
pub struct TranscriptResult {
    /// `area/name`.
    pub name: String,
    /// API area.
    pub area: String,
    /// Number of steps.
    pub steps: usize,
    /// Steps that matched.
    pub passed: usize,
    /// Steps that did not match.
    pub failed: usize,
    /// Steps that matched a known etcd deviation: (step, issue).
    pub deviations: Vec<(usize, String)>,
    /// The first failure.
    pub first_failure: Option<Failure>,
    /// Every failing step, in order.
    pub failures: Vec<Failure>,
    /// Why the transcript was not run (it needs server flags and no launcher was given).
    pub skipped: Option<String>,
}

impl TranscriptResult {
    /// An empty result for `name` in `area` with `steps` steps.
    pub fn new(name: &str, area: &str, steps: usize) -> Self {
        Self {
            name: name.to_owned(),
            area: area.to_owned(),
            steps,
            passed: 0,
            failed: 0,
            deviations: Vec::new(),
            first_failure: None,
            failures: Vec::new(),
            skipped: None,
        }
    }

    /// A transcript that could not start (its server did not come up): every step fails,
    /// `why` is the reported first failure.
    pub fn not_started(name: &str, area: &str, steps: usize, what: &str, why: String) -> Self {
        let mut r = Self::new(name, area, steps);
        r.failed = steps;
        r.first_failure = Some(Failure {
            step: 0,
            request: what.to_owned(),
            expected: "a reachable etcd endpoint".into(),
            got: why,
            diffs: vec![],
        });
        r
    }

    /// True when every step matched (a skipped transcript did not fail).
    pub fn ok(&self) -> bool {
        self.failed == 0
    }
}

struct OpenStream {
    tx: Option<mpsc::Sender<Vec<u8>>>,
    rx: mpsc::Receiver<std::result::Result<Vec<u8>, tonic::Status>>,
    req: MessageDescriptor,
    resp: MessageDescriptor,
    method: String,
    task: JoinHandle<()>,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;
type HttpResult = Result<(u16, BTreeMap<String, Value>, Value)>;

/// Talks to one endpoint.
#[derive(Debug, Clone)]
pub struct Runner {
    endpoint: String,
    channel: Channel,
    http: HttpClient,
    pool: DescriptorPool,
}

fn status_error(s: &tonic::Status) -> GrpcError {
    GrpcError {
        code: format!("{:?}", s.code()),
        message: s.message().to_owned(),
    }
}

fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn form_encode(pairs: &[(String, String)]) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Runner {
    /// Connects (lazily) to `endpoint`, e.g. `http://127.0.0.1:2379`.
    pub fn new(endpoint: &str) -> Result<Self> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let channel = Endpoint::from_shared(endpoint.clone())?
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        let http = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self {
            endpoint,
            channel,
            http,
            pool: grpc::pool()?,
        })
    }

    /// Checks that the endpoint answers gRPC at all (any status counts as an answer).
    pub async fn ping(&self) -> Result<()> {
        let (_, got) = self
            .unary("KV/Range", &json!({"key": "ping"}), None)
            .await
            .with_context(|| format!("cannot reach {}", self.endpoint))?;
        match got {
            Err(e) if e.code == "Unavailable" => {
                bail!("cannot reach {}: {}", self.endpoint, e.message)
            }
            _ => Ok(()),
        }
    }

    async fn unary(
        &self,
        method: &str,
        request: &Value,
        token: Option<&str>,
    ) -> Result<(String, std::result::Result<Value, GrpcError>)> {
        let (md, path) = grpc::method(&self.pool, method)?;
        let bytes = grpc::encode(&md.input(), request)?;
        let mut grpc_client = tonic::client::Grpc::new(self.channel.clone());
        let mut req = tonic::Request::new(bytes);
        if let Some(t) = token {
            req.metadata_mut()
                .insert("token", t.parse().context("token is not valid metadata")?);
        }
        let call = async {
            grpc_client
                .ready()
                .await
                .map_err(|e| anyhow!("connecting: {e}"))?;
            let path = http::uri::PathAndQuery::from_maybe_shared(path)?;
            Ok::<_, anyhow::Error>(grpc_client.unary(req, path, RawCodec).await)
        };
        let answer = tokio::time::timeout(UNARY_TIMEOUT, call)
            .await
            .map_err(|_| anyhow!("{method}: no answer within {UNARY_TIMEOUT:?}"))??;
        let got = match answer {
            Ok(resp) => Ok(grpc::decode(&md.output(), resp.get_ref())?),
            Err(status) => Err(status_error(&status)),
        };
        Ok((md.output().full_name().to_owned(), got))
    }

    fn open(
        &self,
        method: &str,
        request: Option<Vec<u8>>,
        token: Option<&str>,
    ) -> Result<OpenStream> {
        let (md, path) = grpc::method(&self.pool, method)?;
        let path = http::uri::PathAndQuery::from_maybe_shared(path)?;
        let (tx, req_rx) = mpsc::channel::<Vec<u8>>(64);
        let (resp_tx, rx) = mpsc::channel(256);
        let channel = self.channel.clone();
        let token: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>> = token
            .map(|t| t.parse())
            .transpose()
            .context("token is not valid metadata")?;
        let client_streaming = md.is_client_streaming();
        let task = tokio::spawn(async move {
            let mut g = tonic::client::Grpc::new(channel);
            if let Err(e) = g.ready().await {
                let _ = resp_tx
                    .send(Err(tonic::Status::unavailable(e.to_string())))
                    .await;
                return;
            }
            let answer = if client_streaming {
                let mut req =
                    tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(req_rx));
                if let Some(t) = token {
                    req.metadata_mut().insert("token", t);
                }
                g.streaming(req, path, RawCodec).await
            } else {
                let mut req = tonic::Request::new(request.unwrap_or_default());
                if let Some(t) = token {
                    req.metadata_mut().insert("token", t);
                }
                g.server_streaming(req, path, RawCodec).await
            };
            match answer {
                Ok(resp) => {
                    let mut s = resp.into_inner();
                    loop {
                        match s.message().await {
                            Ok(Some(m)) => {
                                if resp_tx.send(Ok(m)).await.is_err() {
                                    break;
                                }
                            }
                            Ok(None) => break,
                            Err(st) => {
                                let _ = resp_tx.send(Err(st)).await;
                                break;
                            }
                        }
                    }
                }
                Err(st) => {
                    let _ = resp_tx.send(Err(st)).await;
                }
            }
        });
        Ok(OpenStream {
            tx: Some(tx),
            rx,
            req: md.input(),
            resp: md.output(),
            method: method.to_owned(),
            task,
        })
    }

    fn http_future(
        &self,
        line: &str,
        step: &Step,
        env: &Env,
    ) -> Result<impl std::future::Future<Output = HttpResult> + Send + 'static> {
        let (method, target) = line
            .split_once(' ')
            .ok_or_else(|| anyhow!("http step {line:?} is not `METHOD /path`"))?;
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let mut url = format!("{}{}", self.endpoint, env.expand(path)?);
        if let Some(q) = query {
            let parts = q
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => Ok(format!("{k}={}", env.substitute_text(v)?)),
                    None => Ok(kv.to_owned()),
                })
                .collect::<Result<Vec<_>>>()?;
            url.push('?');
            url.push_str(&parts.join("&"));
        }
        let mut builder = http::Request::builder().method(method).uri(&url);
        let body = if let Some(form) = &step.form {
            builder = builder.header("Content-Type", "application/x-www-form-urlencoded");
            let pairs = form
                .iter()
                .map(|(k, v)| Ok((k.clone(), env.substitute_text(v)?)))
                .collect::<Result<Vec<_>>>()?;
            form_encode(&pairs)
        } else if let Some(j) = &step.json {
            builder = builder.header("Content-Type", "application/json");
            env.substitute(j)?.to_string()
        } else if let Some(raw) = &step.raw {
            env.expand(raw)?
        } else {
            String::new()
        };
        if let Some(t) = &step.token {
            builder = builder.header("Authorization", env.substitute_text(t)?);
        }
        for (k, v) in step.header_in.iter().flatten() {
            builder = builder.header(k.as_str(), env.substitute_text(v)?);
        }
        let req = builder.body(Full::new(Bytes::from(body)))?;
        let client = self.http.clone();
        let lines = step.lines;
        let metrics = step.metrics.clone();
        Ok(async move {
            let resp = client.request(req).await?;
            let status = resp.status().as_u16();
            let mut headers = BTreeMap::new();
            for h in HEADERS_THAT_MATTER {
                if let Some(v) = resp.headers().get(*h) {
                    headers.insert(
                        (*h).to_owned(),
                        Value::String(v.to_str().unwrap_or("").to_owned()),
                    );
                }
            }
            if let Some(n) = lines {
                let mut body = resp.into_body();
                let mut buf = Vec::new();
                let mut parsed = Vec::new();
                while parsed.len() < n {
                    let Some(frame) = body.frame().await else {
                        break;
                    };
                    if let Ok(data) = frame?.into_data() {
                        buf.extend_from_slice(&data);
                    }
                    while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        if line.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        parsed.push(serde_json::from_slice::<Value>(&line).unwrap_or_else(|_| {
                            Value::String(String::from_utf8_lossy(&line).trim_end().to_owned())
                        }));
                    }
                }
                return Ok((status, headers, Value::Array(parsed)));
            }
            let bytes = resp.into_body().collect().await?.to_bytes();
            if let Some(wanted) = metrics {
                let text = String::from_utf8_lossy(&bytes);
                return Ok((status, headers, summary::metrics(&text, &wanted)));
            }
            let body = serde_json::from_slice::<Value>(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            Ok((status, headers, body))
        })
    }

    async fn setup(&self, t: &Transcript) -> Result<Env> {
        let mut env = Env {
            endpoint: self.endpoint.clone(),
            ..Env::default()
        };
        let end = String::from_utf8(prefix_end(&t.prefix)).unwrap_or_default();
        let _ = self
            .unary(
                "KV/DeleteRange",
                &json!({"key": t.prefix, "range_end": end}),
                None,
            )
            .await;
        if t.prefix.starts_with('/') {
            let line = format!(
                "DELETE /v2/keys{}?recursive=true",
                t.prefix.trim_end_matches('/')
            );
            if let Ok(fut) = self.http_future(&line, &Step::default(), &env) {
                let _ = fut.await;
            }
        }
        let (_, got) = self
            .unary(
                "KV/Range",
                &json!({"key": t.prefix, "range_end": end, "count_only": true}),
                None,
            )
            .await?;
        let resp =
            got.map_err(|e| anyhow!("reading the base revision: {} {}", e.code, e.message))?;
        env.base_rev = resp
            .pointer("/header/revision")
            .and_then(value::as_int)
            .and_then(|r| i64::try_from(r).ok())
            .ok_or_else(|| anyhow!("Range answer has no header.revision"))?;
        if let Ok(fut) = self.http_future("GET /v2/keys/", &Step::default(), &env)
            && let Ok((_, headers, _)) = fut.await
        {
            env.base_v2 = headers
                .get("X-Etcd-Index")
                .and_then(value::as_int)
                .and_then(|r| i64::try_from(r).ok())
                .unwrap_or(0);
        }
        Ok(env)
    }

    /// Runs a transcript. With `record`, answers are written into `t` (replacing any
    /// recorded ones); otherwise they are checked.
    pub async fn run(
        &self,
        name: &str,
        area: &str,
        t: &mut Transcript,
        record: bool,
    ) -> TranscriptResult {
        let mut result = TranscriptResult::new(name, area, t.steps.len());
        let mut env = match self.setup(t).await {
            Ok(env) => env,
            Err(e) => {
                return TranscriptResult::not_started(
                    name,
                    area,
                    t.steps.len(),
                    "(transcript setup)",
                    format!("{e:#}"),
                );
            }
        };
        let mut streams: BTreeMap<String, OpenStream> = BTreeMap::new();
        let mut background: BTreeMap<String, JoinHandle<HttpResult>> = BTreeMap::new();
        let mut aborted = false;
        for (i, step) in t.steps.iter_mut().enumerate() {
            if aborted {
                result.failed += 1;
                continue;
            }
            let outcome = match self
                .step(step, &mut env, &mut streams, &mut background, record)
                .await
            {
                Ok(o) => o,
                Err(e) => {
                    aborted = true;
                    Outcome::Fail(Failure {
                        step: i + 1,
                        request: describe(step),
                        expected: show_expect(&step.expect),
                        got: format!("could not run the step: {e:#}"),
                        diffs: vec![],
                    })
                }
            };
            match outcome {
                Outcome::Pass => result.passed += 1,
                Outcome::KnownDeviation(issue) => {
                    result.passed += 1;
                    result.deviations.push((i + 1, issue));
                }
                Outcome::Fail(mut f) => {
                    f.step = i + 1;
                    result.failed += 1;
                    if result.first_failure.is_none() {
                        result.first_failure = Some(f.clone());
                    }
                    result.failures.push(f);
                }
            }
        }
        for (_, s) in streams {
            s.task.abort();
        }
        for (_, h) in background {
            h.abort();
        }
        result
    }

    async fn step(
        &self,
        step: &mut Step,
        env: &mut Env,
        streams: &mut BTreeMap<String, OpenStream>,
        background: &mut BTreeMap<String, JoinHandle<HttpResult>>,
        record: bool,
    ) -> Result<Outcome> {
        let token = step
            .token
            .as_deref()
            .map(|t| env.substitute_text(t))
            .transpose()?;
        if let Some(ms) = step.sleep_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return Ok(Outcome::Pass);
        }
        if let Some(name) = step.open.clone() {
            let method = step
                .call
                .clone()
                .ok_or_else(|| anyhow!("open needs call"))?;
            let (md, _) = grpc::method(&self.pool, &method)?;
            let first = match (&step.request, md.is_client_streaming()) {
                (Some(r), false) => Some(grpc::encode(&md.input(), &env.substitute(r)?)?),
                (None, false) => bail!("server-streaming open needs a request"),
                _ => None,
            };
            let s = self.open(&method, first, token.as_deref())?;
            streams.insert(name, s);
            return Ok(Outcome::Pass);
        }
        if let Some(method) = step.call.clone() {
            let request = env.substitute(step.request.as_ref().unwrap_or(&json!({})))?;
            for i in 1..step.repeat.unwrap_or(1) {
                let (_, got) = self.unary(&method, &request, token.as_deref()).await?;
                let want = step.expect.error.as_ref().map(|e| e.code.as_str());
                let have = got.as_ref().err().map(|e| e.code.as_str());
                if want != have || (record && have.is_some()) {
                    return repeat_failure(step, i, record, Got::Grpc(got));
                }
            }
            let (ctx, got) = self.unary(&method, &request, token.as_deref()).await?;
            return Ok(self.conclude(
                step,
                Got::Grpc(got),
                env,
                &format!("{method} {ctx}"),
                record,
            ));
        }
        if let Some(name) = step.send.clone() {
            let s = streams
                .get_mut(&name)
                .ok_or_else(|| anyhow!("no open stream {name}"))?;
            let request = env.substitute(step.request.as_ref().unwrap_or(&json!({})))?;
            let bytes = grpc::encode(&s.req, &request)?;
            let tx =
                s.tx.as_ref()
                    .ok_or_else(|| anyhow!("stream {name} is closed for sending"))?;
            tx.send(bytes)
                .await
                .map_err(|_| anyhow!("stream {name} ended"))?;
            return Ok(Outcome::Pass);
        }
        if let Some(name) = step.recv.clone() {
            let s = streams
                .get_mut(&name)
                .ok_or_else(|| anyhow!("no open stream {name}"))?;
            let wait = Duration::from_millis(step.wait_ms.unwrap_or(DEFAULT_RECV_MS));
            if let Some(kind) = step.summary.clone() {
                if kind != summary::SNAPSHOT {
                    bail!("unknown summary {kind:?} (known: {})", summary::SNAPSHOT);
                }
                let mut all = Vec::new();
                let mut end = None;
                while all.len() < MAX_STREAM_MESSAGES {
                    match tokio::time::timeout(wait, s.rx.recv()).await {
                        Ok(Some(Ok(bytes))) => all.push(grpc::decode(&s.resp, &bytes)?),
                        Ok(Some(Err(st))) => {
                            end = Some(status_error(&st));
                            break;
                        }
                        Ok(None) => break,
                        Err(_) => bail!(
                            "stream {name} did not end within {wait:?} after {} messages",
                            all.len()
                        ),
                    }
                }
                let got = match end {
                    Some(e) if all.is_empty() => Err(e),
                    Some(e) => Err(GrpcError {
                        code: e.code,
                        message: format!("{} (after {} messages)", e.message, all.len()),
                    }),
                    None => Ok(summary::snapshot(&all)),
                };
                let ctx = format!("{} summary", s.method);
                return Ok(self.conclude(step, Got::Grpc(got), env, &ctx, record));
            }
            if let Some(n) = step.messages {
                let mut all = Vec::new();
                for _ in 0..n {
                    match tokio::time::timeout(wait, s.rx.recv()).await {
                        Ok(Some(Ok(bytes))) => all.push(grpc::decode(&s.resp, &bytes)?),
                        Ok(Some(Err(st))) => bail!("stream {name} failed: {:?}", status_error(&st)),
                        Ok(None) => {
                            bail!("stream {name} ended after {} of {n} messages", all.len())
                        }
                        Err(_) => bail!(
                            "only {} of {n} messages on stream {name} within {wait:?}",
                            all.len()
                        ),
                    }
                }
                let ctx = format!("{} {}", s.method, s.resp.full_name());
                return Ok(self.conclude(step, Got::Many(all), env, &ctx, record));
            }
            let got = match tokio::time::timeout(wait, s.rx.recv()).await {
                Err(_) => bail!("no message on stream {name} within {wait:?}"),
                Ok(None) => Err(GrpcError {
                    code: "EndOfStream".into(),
                    message: String::new(),
                }),
                Ok(Some(Ok(bytes))) => Ok(grpc::decode(&s.resp, &bytes)?),
                Ok(Some(Err(st))) => Err(status_error(&st)),
            };
            let ctx = format!("{} {}", s.method, s.resp.full_name());
            return Ok(self.conclude(step, Got::Grpc(got), env, &ctx, record));
        }
        if let Some(name) = step.quiet.clone() {
            let s = streams
                .get_mut(&name)
                .ok_or_else(|| anyhow!("no open stream {name}"))?;
            let wait = Duration::from_millis(step.wait_ms.unwrap_or(DEFAULT_QUIET_MS));
            return Ok(match tokio::time::timeout(wait, s.rx.recv()).await {
                Err(_) => Outcome::Pass,
                Ok(m) => {
                    let got = match m {
                        None => "end of stream".to_owned(),
                        Some(Ok(b)) => grpc::decode(&s.resp, &b)
                            .map(|v| v.to_string())
                            .unwrap_or_default(),
                        Some(Err(st)) => format!("error {:?}", status_error(&st)),
                    };
                    if record {
                        bail!("stream {name} was not quiet: {got}");
                    }
                    Outcome::Fail(Failure {
                        step: 0,
                        request: describe(step),
                        expected: format!("no message for {wait:?}"),
                        got,
                        diffs: vec![],
                    })
                }
            });
        }
        if let Some(name) = step.close.clone() {
            if let Some(mut s) = streams.remove(&name) {
                s.tx = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
                s.task.abort();
            }
            return Ok(Outcome::Pass);
        }
        if let Some(line) = step.http.clone() {
            for i in 1..step.repeat.unwrap_or(1) {
                let fut = self.http_future(&line, step, env)?;
                let (status, headers, body) = tokio::time::timeout(UNARY_TIMEOUT, fut)
                    .await
                    .map_err(|_| anyhow!("{line}: no answer within {UNARY_TIMEOUT:?}"))??;
                let fine = if record {
                    (200..300).contains(&status)
                } else {
                    step.expect.status == Some(status)
                };
                if !fine {
                    let got = Got::Http {
                        status,
                        headers,
                        body,
                    };
                    return repeat_failure(step, i, record, got);
                }
            }
            let fut = self.http_future(&line, step, env)?;
            if let Some(name) = step.background.clone() {
                background.insert(name, tokio::spawn(fut));
                return Ok(Outcome::Pass);
            }
            let (status, headers, body) = tokio::time::timeout(UNARY_TIMEOUT, fut)
                .await
                .map_err(|_| anyhow!("{line}: no answer within {UNARY_TIMEOUT:?}"))??;
            return Ok(self.conclude(
                step,
                Got::Http {
                    status,
                    headers,
                    body,
                },
                env,
                &line,
                record,
            ));
        }
        if let Some(name) = step.join.clone() {
            let h = background
                .remove(&name)
                .ok_or_else(|| anyhow!("no background request {name}"))?;
            let wait = Duration::from_millis(step.wait_ms.unwrap_or(DEFAULT_RECV_MS));
            let (status, headers, body) =
                tokio::time::timeout(wait, h).await.map_err(|_| {
                    anyhow!("background request {name} did not finish within {wait:?}")
                })???;
            return Ok(self.conclude(
                step,
                Got::Http {
                    status,
                    headers,
                    body,
                },
                env,
                &name,
                record,
            ));
        }
        bail!("step has no recognised kind")
    }

    fn conclude(
        &self,
        step: &mut Step,
        got: Got,
        env: &mut Env,
        ctx: &str,
        record: bool,
    ) -> Outcome {
        let mut got = got;
        canonicalize(&mut got, ctx);
        if record {
            step.expect = record_expect(&got, env, ctx);
            // Bind variables the recorded tokens introduce, as replay would.
            let _ = check(&step.expect.clone(), &got, env);
            return Outcome::Pass;
        }
        judge(step, &got, env)
    }
}

/// An earlier send of a `repeat` step answered differently from the recorded status.
fn repeat_failure(step: &Step, i: usize, record: bool, got: Got) -> Result<Outcome> {
    let n = step.repeat.unwrap_or(1);
    if record {
        bail!("send {i} of {n} did not succeed: {}", got.show());
    }
    Ok(Outcome::Fail(Failure {
        step: 0,
        request: format!("{} (send {i} of {n})", describe(step)),
        expected: show_expect(&step.expect),
        got: got.show(),
        diffs: vec![Diff {
            path: "status".into(),
            expected: "the recorded status for every send".into(),
            got: format!("a different status at send {i}"),
        }],
    }))
}

/// Replay verdict for one answer: the recorded etcd answer passes (as a known deviation
/// when the step carries one), the deviation's corrected answer passes, anything else
/// fails with the differences from the recorded answer.
fn judge(step: &Step, got: &Got, env: &mut Env) -> Outcome {
    let mut trial = env.clone();
    let diffs = check(&step.expect, got, &mut trial);
    if diffs.is_empty() {
        *env = trial;
        return match &step.deviation {
            Some(d) => Outcome::KnownDeviation(d.issue.clone()),
            None => Outcome::Pass,
        };
    }
    if let Some(d) = &step.deviation {
        let mut trial = env.clone();
        if check(&d.corrected, got, &mut trial).is_empty() {
            *env = trial;
            return Outcome::Pass;
        }
    }
    Outcome::Fail(Failure {
        step: 0,
        request: describe(step),
        expected: show_expect(&step.expect),
        got: got.show(),
        diffs,
    })
}

fn record_expect(got: &Got, env: &mut Env, ctx: &str) -> Expect {
    match got {
        Got::Grpc(Ok(v)) => Expect {
            response: Some(value::normalize(v, ctx, env)),
            ..Expect::default()
        },
        Got::Grpc(Err(e)) => Expect {
            error: Some(e.clone()),
            ..Expect::default()
        },
        Got::Many(v) => Expect {
            responses: Some(v.iter().map(|x| value::normalize(x, ctx, env)).collect()),
            ..Expect::default()
        },
        Got::Http {
            status,
            headers,
            body,
        } => {
            let h = value::normalize(&json!(headers), ctx, env);
            let headers = h
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            Expect {
                status: Some(*status),
                headers: Some(headers),
                body: Some(value::normalize(body, ctx, env)),
                ..Expect::default()
            }
        }
    }
}

fn check(exp: &Expect, got: &Got, env: &mut Env) -> Vec<Diff> {
    let mut diffs = Vec::new();
    match got {
        Got::Grpc(g) => match (&exp.response, &exp.error, g) {
            (Some(e), None, Ok(v)) => value::compare(e, v, env, "", &mut diffs),
            (None, Some(e), Err(ge)) => {
                if e.code != ge.code {
                    diffs.push(Diff {
                        path: "error.code".into(),
                        expected: e.code.clone(),
                        got: ge.code.clone(),
                    });
                }
                if e.message != ge.message {
                    diffs.push(Diff {
                        path: "error.message".into(),
                        expected: format!("{:?}", e.message),
                        got: format!("{:?}", ge.message),
                    });
                }
            }
            (None, None, _) => diffs.push(Diff {
                path: ".".into(),
                expected: "(nothing recorded)".into(),
                got: got.show(),
            }),
            _ => diffs.push(Diff {
                path: ".".into(),
                expected: show_expect(exp),
                got: got.show(),
            }),
        },
        Got::Many(got) => {
            let Some(exp) = &exp.responses else {
                diffs.push(Diff {
                    path: ".".into(),
                    expected: "(no responses recorded)".into(),
                    got: json!(got).to_string(),
                });
                return diffs;
            };
            if exp.len() != got.len() {
                diffs.push(Diff {
                    path: "responses (length)".into(),
                    expected: exp.len().to_string(),
                    got: got.len().to_string(),
                });
                return diffs;
            }
            let mut used = vec![false; got.len()];
            for (i, e) in exp.iter().enumerate() {
                let found = got.iter().enumerate().find_map(|(j, g)| {
                    if used[j] {
                        return None;
                    }
                    let mut trial = env.clone();
                    let mut d = Vec::new();
                    value::compare(e, g, &mut trial, "", &mut d);
                    d.is_empty().then_some((j, trial))
                });
                match found {
                    Some((j, trial)) => {
                        used[j] = true;
                        *env = trial;
                    }
                    None => diffs.push(Diff {
                        path: format!("responses[{i}]"),
                        expected: e.to_string(),
                        got: "(no unmatched message equals it)".into(),
                    }),
                }
            }
        }
        Got::Http {
            status,
            headers,
            body,
        } => {
            if exp.status != Some(*status) {
                diffs.push(Diff {
                    path: "status".into(),
                    expected: exp
                        .status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "(nothing recorded)".into()),
                    got: status.to_string(),
                });
            }
            let eh = json!(exp.headers.clone().unwrap_or_default());
            value::compare(&eh, &json!(headers), env, "headers", &mut diffs);
            value::compare(
                exp.body.as_ref().unwrap_or(&Value::Null),
                body,
                env,
                "body",
                &mut diffs,
            );
        }
    }
    diffs
}

/// One-line description of a step's request.
pub fn describe(step: &Step) -> String {
    let req = step
        .request
        .as_ref()
        .map(|r| format!(" {r}"))
        .unwrap_or_default();
    if let Some(m) = &step.call {
        match &step.open {
            Some(s) => format!("open {s}: {m}{req}"),
            None => format!("{m}{req}"),
        }
    } else if let Some(s) = &step.send {
        format!("send {s}:{req}")
    } else if let Some(s) = &step.recv {
        format!("recv {s}")
    } else if let Some(s) = &step.quiet {
        format!("quiet {s}")
    } else if let Some(l) = &step.http {
        let mut d = l.clone();
        if let Some(f) = &step.form {
            d.push_str(&format!(" form {}", json!(f)));
        }
        if let Some(j) = &step.json {
            d.push_str(&format!(" json {j}"));
        }
        d
    } else if let Some(j) = &step.join {
        format!("join {j}")
    } else {
        format!("{step:?}")
    }
}

fn show_expect(e: &Expect) -> String {
    serde_yaml::to_string(e)
        .unwrap_or_default()
        .trim_end()
        .to_owned()
}

/// The one ordering normalisation: etcd lists a lease's attached keys
/// (`LeaseTimeToLive` with `keys`) in hash-map order, so they are compared sorted.
///
/// Member lists are ordered by member ID, which is random per run: they are compared
/// with started members (those with client URLs) first, then by peer URLs.
fn canonicalize(got: &mut Got, ctx: &str) {
    let body = match got {
        Got::Grpc(Ok(v)) => v,
        Got::Http { body, .. } => body,
        _ => return,
    };
    if let Some(members) = body.get_mut("members").and_then(Value::as_array_mut) {
        members.sort_by_key(|m| {
            let started = m
                .get("clientURLs")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            (!started, m.get("peerURLs").map(Value::to_string))
        });
    }
    if !(ctx.contains("TimeToLive") || ctx.contains("/lease/timetolive")) {
        return;
    }
    if let Some(keys) = body.get_mut("keys").and_then(Value::as_array_mut) {
        keys.sort_by_key(|k| k.as_str().map(str::to_owned));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::Deviation;

    fn step_with_deviation() -> Step {
        Step {
            call: Some("KV/Txn".into()),
            expect: Expect {
                response: Some(json!({"succeeded": true})),
                ..Expect::default()
            },
            deviation: Some(Deviation {
                issue: "issue-1".into(),
                note: "etcd answers wrongly".into(),
                corrected: Expect {
                    error: Some(GrpcError {
                        code: "PermissionDenied".into(),
                        message: "denied".into(),
                    }),
                    ..Expect::default()
                },
            }),
            ..Step::default()
        }
    }

    #[test]
    fn etcd_answer_is_reported_as_known_deviation() {
        let got = Got::Grpc(Ok(json!({"succeeded": true})));
        let outcome = judge(&step_with_deviation(), &got, &mut Env::default());
        assert!(
            matches!(outcome, Outcome::KnownDeviation(ref i) if i == "issue-1"),
            "{outcome:?}"
        );
    }

    #[test]
    fn corrected_answer_passes() {
        let got = Got::Grpc(Err(GrpcError {
            code: "PermissionDenied".into(),
            message: "denied".into(),
        }));
        let outcome = judge(&step_with_deviation(), &got, &mut Env::default());
        assert!(matches!(outcome, Outcome::Pass), "{outcome:?}");
    }

    #[test]
    fn any_other_answer_fails_against_the_recorded_one() {
        let got = Got::Grpc(Err(GrpcError {
            code: "PermissionDenied".into(),
            message: "other".into(),
        }));
        match judge(&step_with_deviation(), &got, &mut Env::default()) {
            Outcome::Fail(f) => assert_eq!(f.diffs.len(), 1, "{:?}", f.diffs),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn unordered_messages_match_in_any_order() {
        let mut step = Step::default();
        step.expect.responses = Some(vec![json!({"watch_id": 0}), json!({"watch_id": 1})]);
        let got = Got::Many(vec![json!({"watch_id": 1}), json!({"watch_id": 0})]);
        assert!(matches!(
            judge(&step, &got, &mut Env::default()),
            Outcome::Pass
        ));
        let wrong = Got::Many(vec![json!({"watch_id": 1}), json!({"watch_id": 1})]);
        assert!(matches!(
            judge(&step, &wrong, &mut Env::default()),
            Outcome::Fail(_)
        ));
    }
}
