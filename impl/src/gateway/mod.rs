//! The v3 JSON gateway: `POST /v3/<service>/<method>` with a JSON body, answered as
//! etcd 3.4's gateway answers (also under `/v3beta/`; `/v3alpha/` is gone in 3.4).
//!
//! Every path is served by the gRPC services themselves, in process: the JSON request is
//! turned into the protobuf request (see [`jsonpb`]), sent through the same router that
//! serves gRPC clients, and the protobuf response is written back as JSON. A service
//! registered on the gRPC router is therefore reachable here as soon as it exists;
//! until then its paths answer `Unimplemented` (HTTP 501).
//!
//! - Unary methods answer one JSON object; a gRPC error becomes
//!   `{"error":"…","message":"…","code":N}` with the HTTP status the gateway maps `N` to.
//! - Streams (`/v3/watch`, `/v3/lease/keepalive`, `/v3/maintenance/snapshot`,
//!   `/v3/election/observe`) answer newline-delimited `{"result":{…}}` objects and end
//!   with `{"error":{"grpc_code":…,"http_code":…,"message":…,"http_status":…}}` on an
//!   error. The response status and headers go out with the first object, as etcd's do.
//!   The request body of `/v3/watch` and `/v3/lease/keepalive` is a stream of request
//!   objects, read as they arrive; a watch stays open after the request body ends (as
//!   etcd's does) until the client goes away.
//! - The `Authorization` header is passed to the services as the `authorization`
//!   metadata, `Grpc-Metadata-<Name>` headers as metadata `<name>`.

pub mod gojson;
pub mod jsonpb;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt as _;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use tokio::sync::{mpsc, oneshot};
use tonic::{Code, Status};
use tower::ServiceExt as _;

use gojson::Next;

/// The gateway's paths (after `/v3/`) and the gRPC method each one calls, as etcd 3.4
/// maps them. `/v3/maintenance/hash` is Hash (HashKV has no path of its own in 3.4).
const PATHS: &[(&str, &str, &str)] = &[
    ("kv/range", "etcdserverpb.KV", "Range"),
    ("kv/put", "etcdserverpb.KV", "Put"),
    ("kv/deleterange", "etcdserverpb.KV", "DeleteRange"),
    ("kv/txn", "etcdserverpb.KV", "Txn"),
    ("kv/compaction", "etcdserverpb.KV", "Compact"),
    ("watch", "etcdserverpb.Watch", "Watch"),
    ("lease/grant", "etcdserverpb.Lease", "LeaseGrant"),
    ("lease/revoke", "etcdserverpb.Lease", "LeaseRevoke"),
    ("kv/lease/revoke", "etcdserverpb.Lease", "LeaseRevoke"),
    ("lease/keepalive", "etcdserverpb.Lease", "LeaseKeepAlive"),
    ("lease/timetolive", "etcdserverpb.Lease", "LeaseTimeToLive"),
    (
        "kv/lease/timetolive",
        "etcdserverpb.Lease",
        "LeaseTimeToLive",
    ),
    ("lease/leases", "etcdserverpb.Lease", "LeaseLeases"),
    ("kv/lease/leases", "etcdserverpb.Lease", "LeaseLeases"),
    ("cluster/member/add", "etcdserverpb.Cluster", "MemberAdd"),
    (
        "cluster/member/remove",
        "etcdserverpb.Cluster",
        "MemberRemove",
    ),
    (
        "cluster/member/update",
        "etcdserverpb.Cluster",
        "MemberUpdate",
    ),
    ("cluster/member/list", "etcdserverpb.Cluster", "MemberList"),
    (
        "cluster/member/promote",
        "etcdserverpb.Cluster",
        "MemberPromote",
    ),
    ("maintenance/alarm", "etcdserverpb.Maintenance", "Alarm"),
    ("maintenance/status", "etcdserverpb.Maintenance", "Status"),
    (
        "maintenance/defragment",
        "etcdserverpb.Maintenance",
        "Defragment",
    ),
    ("maintenance/hash", "etcdserverpb.Maintenance", "Hash"),
    (
        "maintenance/snapshot",
        "etcdserverpb.Maintenance",
        "Snapshot",
    ),
    (
        "maintenance/transfer-leadership",
        "etcdserverpb.Maintenance",
        "MoveLeader",
    ),
    ("auth/enable", "etcdserverpb.Auth", "AuthEnable"),
    ("auth/disable", "etcdserverpb.Auth", "AuthDisable"),
    ("auth/authenticate", "etcdserverpb.Auth", "Authenticate"),
    ("auth/user/add", "etcdserverpb.Auth", "UserAdd"),
    ("auth/user/get", "etcdserverpb.Auth", "UserGet"),
    ("auth/user/list", "etcdserverpb.Auth", "UserList"),
    ("auth/user/delete", "etcdserverpb.Auth", "UserDelete"),
    (
        "auth/user/changepw",
        "etcdserverpb.Auth",
        "UserChangePassword",
    ),
    ("auth/user/grant", "etcdserverpb.Auth", "UserGrantRole"),
    ("auth/user/revoke", "etcdserverpb.Auth", "UserRevokeRole"),
    ("auth/role/add", "etcdserverpb.Auth", "RoleAdd"),
    ("auth/role/get", "etcdserverpb.Auth", "RoleGet"),
    ("auth/role/list", "etcdserverpb.Auth", "RoleList"),
    ("auth/role/delete", "etcdserverpb.Auth", "RoleDelete"),
    (
        "auth/role/grant",
        "etcdserverpb.Auth",
        "RoleGrantPermission",
    ),
    (
        "auth/role/revoke",
        "etcdserverpb.Auth",
        "RoleRevokePermission",
    ),
    ("lock/lock", "v3lockpb.Lock", "Lock"),
    ("lock/unlock", "v3lockpb.Lock", "Unlock"),
    ("election/campaign", "v3electionpb.Election", "Campaign"),
    ("election/proclaim", "v3electionpb.Election", "Proclaim"),
    ("election/leader", "v3electionpb.Election", "Leader"),
    ("election/observe", "v3electionpb.Election", "Observe"),
    ("election/resign", "v3electionpb.Election", "Resign"),
];

/// How many request messages of a stream may wait for the service.
const STREAM_QUEUE: usize = 16;

/// One gateway path.
#[derive(Debug, Clone)]
struct Route {
    grpc_path: String,
    input: MessageDescriptor,
    output: MessageDescriptor,
    client_streaming: bool,
    server_streaming: bool,
    /// The request stream stays open after the request body ends (Watch).
    keep_open: bool,
}

#[derive(Debug)]
struct Inner {
    routes: BTreeMap<&'static str, Route>,
    grpc: Router,
    body_limit: usize,
}

/// The gateway's shared state.
#[derive(Debug, Clone)]
pub struct Gateway(Arc<Inner>);

/// The gateway's routes, calling `grpc` (the router serving the gRPC services).
/// `body_limit` bounds a unary request body.
///
/// # Errors
/// The API descriptors do not describe a method the gateway maps (a build defect).
pub fn router(grpc: Router, body_limit: usize) -> anyhow::Result<Router> {
    let pool = DescriptorPool::decode(oxetcd_api::FILE_DESCRIPTOR_SET)?;
    let mut routes = BTreeMap::new();
    for &(path, service, method) in PATHS {
        let method_desc = pool
            .get_service_by_name(service)
            .and_then(|s| s.methods().find(|m| m.name() == method))
            .ok_or_else(|| anyhow::anyhow!("no gRPC method {service}/{method} for /v3/{path}"))?;
        routes.insert(
            path,
            Route {
                grpc_path: format!("/{service}/{method}"),
                input: method_desc.input(),
                output: method_desc.output(),
                client_streaming: method_desc.is_client_streaming(),
                server_streaming: method_desc.is_server_streaming(),
                keep_open: path == "watch",
            },
        );
    }
    // The gateway's calls are gRPC calls, counted in the gRPC byte metrics as etcd's
    // (whose gateway dials its own gRPC server) are.
    let grpc = grpc.layer(axum::middleware::from_fn(crate::http::count_grpc));
    let gateway = Gateway(Arc::new(Inner {
        routes,
        grpc,
        body_limit,
    }));
    Ok(Router::new()
        .route("/v3/{*path}", any(serve))
        .route("/v3beta/{*path}", any(serve))
        .route("/v3", any(redirect_to_v3))
        .route("/v3alpha/{*path}", any(gone))
        .with_state(gateway))
}

/// A plain-text answer as etcd's HTTP layer writes one.
fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn redirect_to_v3() -> Response {
    (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/v3/")]).into_response()
}

async fn gone() -> Response {
    text(StatusCode::NOT_FOUND, "404 page not found\n")
}

async fn serve(
    State(gateway): State<Gateway>,
    Path(path): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if method == Method::OPTIONS {
        return StatusCode::OK.into_response();
    }
    let Some(route) = gateway.0.routes.get(path.as_str()) else {
        return text(StatusCode::NOT_FOUND, "Not Found\n");
    };
    if method != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    }
    if route.client_streaming {
        return gateway.bidi(route, &headers, body).await;
    }
    let bytes = match axum::body::to_bytes(body, gateway.0.body_limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return error_response(&Status::resource_exhausted(format!(
                "grpc: received message larger than max ({})",
                gateway.0.body_limit
            )));
        }
    };
    let request = match decode_first(&route.input, &bytes) {
        Ok(request) => request,
        Err(message) => return error_response(&Status::invalid_argument(message)),
    };
    let frame = grpc_frame(&request);
    let body = Body::from(frame);
    if route.server_streaming {
        gateway.stream(route, &headers, body, None).await
    } else {
        gateway.unary(route, &headers, body).await
    }
}

/// The request of a unary or server-streaming call: the first JSON value of the body
/// (an empty body is an empty request).
fn decode_first(desc: &MessageDescriptor, bytes: &[u8]) -> Result<DynamicMessage, String> {
    match gojson::decode_next(bytes, true)? {
        Next::Value(json, _) => jsonpb::from_json(desc, &json),
        Next::End | Next::NeedMore => Ok(DynamicMessage::new(desc.clone())),
    }
}

/// A message in gRPC's length-prefixed framing (uncompressed).
fn grpc_frame(message: &DynamicMessage) -> Bytes {
    let encoded = message.encode_to_vec();
    let mut frame = BytesMut::with_capacity(encoded.len() + 5);
    frame.extend_from_slice(&[0]);
    frame.extend_from_slice(
        &u32::try_from(encoded.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    frame.extend_from_slice(&encoded);
    frame.freeze()
}

/// The HTTP status etcd's gateway answers a gRPC code with.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `{"error":…,"message":…,"code":N}` (fields at their default left out).
fn error_body(status: &Status) -> String {
    let mut fields = Vec::new();
    if !status.message().is_empty() {
        let mut quoted = String::new();
        gojson::write_string(&mut quoted, status.message());
        fields.push(format!("\"error\":{quoted}"));
        fields.push(format!("\"message\":{quoted}"));
    }
    let code = status.code() as i32;
    if code != 0 {
        fields.push(format!("\"code\":{code}"));
    }
    format!("{{{}}}", fields.join(","))
}

fn error_response(status: &Status) -> Response {
    (
        http_status(status.code()),
        [(header::CONTENT_TYPE, "application/json")],
        error_body(status),
    )
        .into_response()
}

/// The last object of a stream that ended with an error.
fn stream_error_chunk(status: &Status) -> String {
    let http = http_status(status.code());
    let mut message = String::new();
    gojson::write_string(&mut message, status.message());
    let mut reason = String::new();
    gojson::write_string(&mut reason, http.canonical_reason().unwrap_or(""));
    let message_field = if status.message().is_empty() {
        String::new()
    } else {
        format!(",\"message\":{message}")
    };
    format!(
        "{{\"error\":{{\"grpc_code\":{},\"http_code\":{}{message_field},\"http_status\":{reason}}}}}",
        status.code() as i32,
        http.as_u16()
    )
}

fn json_headers(status: StatusCode, from_service: bool) -> axum::http::response::Builder {
    let builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    if from_service {
        builder.header("grpc-metadata-content-type", "application/grpc")
    } else {
        builder
    }
}

/// What the in-process gRPC call answered.
enum Reply {
    /// Trailers only: the call ended before any message.
    Ended(Status),
    /// Headers, then messages and trailers in the body.
    Body(GrpcBody),
}

impl Gateway {
    async fn call(&self, route: &Route, headers: &HeaderMap, body: Body) -> Reply {
        let mut request = axum::http::Request::builder()
            .method(Method::POST)
            .uri(&route.grpc_path)
            .header(header::CONTENT_TYPE, "application/grpc")
            .header(header::TE, "trailers");
        for (name, value) in headers {
            if name == header::AUTHORIZATION {
                request = request.header("authorization", value);
            } else if let Some(key) = name.as_str().strip_prefix("grpc-metadata-")
                && !key.is_empty()
            {
                request = request.header(key, value);
            }
        }
        let request = match request.body(body) {
            Ok(request) => request,
            Err(error) => return Reply::Ended(Status::invalid_argument(error.to_string())),
        };
        let response = match self.0.grpc.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        if let Some(status) = Status::from_header_map(response.headers()) {
            if status.code() == Code::Unimplemented && status.message().is_empty() {
                // No service registered under this name (yet).
                let service = route.grpc_path.split('/').nth(1).unwrap_or_default();
                return Reply::Ended(Status::unimplemented(format!("unknown service {service}")));
            }
            return Reply::Ended(status);
        }
        Reply::Body(GrpcBody {
            body: response.into_body(),
            buffer: BytesMut::new(),
        })
    }

    async fn unary(&self, route: &Route, headers: &HeaderMap, body: Body) -> Response {
        let mut reply = match self.call(route, headers, body).await {
            Reply::Ended(status) => return unary_end(&status),
            Reply::Body(reply) => reply,
        };
        match reply.next().await {
            Item::Message(bytes) => match DynamicMessage::decode(route.output.clone(), bytes) {
                Ok(message) => json_headers(StatusCode::OK, true)
                    .body(Body::from(jsonpb::to_json(&message)))
                    .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
                Err(error) => error_response(&Status::internal(error.to_string())),
            },
            Item::End(status) => unary_end(&status),
        }
    }

    /// A server stream: the status and headers go out with the first object.
    async fn stream(
        &self,
        route: &Route,
        headers: &HeaderMap,
        body: Body,
        guard: Option<oneshot::Sender<()>>,
    ) -> Response {
        let (reply, first) = match self.call(route, headers, body).await {
            Reply::Ended(status) => (None, Item::End(status)),
            Reply::Body(mut reply) => {
                let first = reply.next().await;
                (Some(reply), first)
            }
        };
        let from_service = reply.is_some();
        let (status, first_chunk, done) = match first {
            Item::Message(bytes) => (StatusCode::OK, result_chunk(&route.output, bytes), false),
            Item::End(status) if status.code() == Code::Ok => (StatusCode::OK, Bytes::new(), true),
            Item::End(status) => (
                http_status(status.code()),
                Bytes::from(stream_error_chunk(&status)),
                true,
            ),
        };
        let state = StreamState {
            reply: if done { None } else { reply },
            output: route.output.clone(),
            pending: Some(first_chunk),
            _guard: guard,
        };
        let chunks = futures::stream::unfold(state, |mut state| async move {
            if let Some(chunk) = state.pending.take() {
                return Some((Ok::<Bytes, Infallible>(chunk), state));
            }
            let reply = state.reply.as_mut()?;
            let chunk = match reply.next().await {
                Item::Message(bytes) => result_chunk(&state.output, bytes),
                Item::End(status) => {
                    state.reply = None;
                    if status.code() == Code::Ok {
                        return None;
                    }
                    Bytes::from(stream_error_chunk(&status))
                }
            };
            Some((Ok(chunk), state))
        });
        json_headers(status, from_service)
            .body(Body::from_stream(chunks))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }

    /// A bidirectional stream: request objects are read from the body as they arrive.
    async fn bidi(&self, route: &Route, headers: &HeaderMap, body: Body) -> Response {
        let mut requests = JsonStream {
            body,
            buffer: Vec::new(),
            eof: false,
        };
        let (sender, receiver) = mpsc::channel::<Result<Bytes, Infallible>>(STREAM_QUEUE);
        // The first request is read before the call; a bad one is answered as an error
        // of unknown kind (HTTP 500), as etcd's gateway does.
        match requests.next(&route.input).await {
            Ok(Some(message)) => {
                let _ = sender.send(Ok(grpc_frame(&message))).await;
            }
            Ok(None) => {}
            Err(message) => return error_response(&Status::unknown(message)),
        }
        let (guard, gone) = oneshot::channel::<()>();
        let input = route.input.clone();
        let keep_open = route.keep_open;
        tokio::spawn(async move {
            // Later bad requests end the request stream quietly.
            while let Ok(Some(message)) = requests.next(&input).await {
                if sender.send(Ok(grpc_frame(&message))).await.is_err() {
                    return;
                }
            }
            if keep_open {
                // Held until the service drops the stream or the client goes away.
                tokio::select! {
                    () = sender.closed() => {}
                    _ = gone => {}
                }
            }
        });
        let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(receiver));
        self.stream(route, headers, body, Some(guard)).await
    }
}

fn unary_end(status: &Status) -> Response {
    if status.code() == Code::Ok {
        // A unary call must answer one message.
        return error_response(&Status::internal("no response message"));
    }
    error_response(status)
}

fn result_chunk(output: &MessageDescriptor, bytes: Bytes) -> Bytes {
    match DynamicMessage::decode(output.clone(), bytes) {
        Ok(message) => Bytes::from(format!("{{\"result\":{}}}\n", jsonpb::to_json(&message))),
        Err(error) => Bytes::from(stream_error_chunk(&Status::internal(error.to_string()))),
    }
}

struct StreamState {
    reply: Option<GrpcBody>,
    output: MessageDescriptor,
    pending: Option<Bytes>,
    /// Dropped with the response: tells the request side the client has gone.
    _guard: Option<oneshot::Sender<()>>,
}

/// One item of a gRPC response body.
enum Item {
    Message(Bytes),
    End(Status),
}

/// Reads length-prefixed messages and the trailers from a gRPC response body.
struct GrpcBody {
    body: Body,
    buffer: BytesMut,
}

impl GrpcBody {
    async fn next(&mut self) -> Item {
        loop {
            if self.buffer.len() >= 5 {
                let mut header = &self.buffer[1..5];
                let len = usize::try_from(header.get_u32()).unwrap_or(usize::MAX);
                if self.buffer.len() - 5 >= len {
                    self.buffer.advance(5);
                    return Item::Message(self.buffer.split_to(len).freeze());
                }
            }
            match self.body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.buffer.extend_from_slice(&data),
                    Err(frame) => {
                        if let Some(trailers) = frame.trailers_ref() {
                            return Item::End(Status::from_header_map(trailers).unwrap_or_else(
                                || Status::internal("gRPC trailers without a status"),
                            ));
                        }
                    }
                },
                Some(Err(error)) => return Item::End(Status::internal(error.to_string())),
                None => return Item::End(Status::internal("gRPC response ended without trailers")),
            }
        }
    }
}

/// Request objects read from a request body as they arrive.
struct JsonStream {
    body: Body,
    buffer: Vec<u8>,
    eof: bool,
}

impl JsonStream {
    /// The next request, `None` once the body has ended.
    async fn next(&mut self, desc: &MessageDescriptor) -> Result<Option<DynamicMessage>, String> {
        loop {
            match gojson::decode_next(&self.buffer, self.eof)? {
                Next::Value(json, used) => {
                    self.buffer.drain(..used);
                    return jsonpb::from_json(desc, &json).map(Some);
                }
                Next::End => return Ok(None),
                Next::NeedMore => match self.body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            self.buffer.extend_from_slice(&data);
                        }
                    }
                    Some(Err(_)) | None => self.eof = true,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_maps_to_a_method_of_the_api() {
        let gateway = router(Router::new(), 1024);
        assert!(gateway.is_ok(), "{:?}", gateway.err());
    }

    #[test]
    fn errors_are_written_as_the_gateway_writes_them() {
        assert_eq!(
            error_body(&Status::invalid_argument("etcdserver: key is not provided")),
            r#"{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}"#
        );
        assert_eq!(
            stream_error_chunk(&Status::unknown("auth: user name is empty")),
            r#"{"error":{"grpc_code":2,"http_code":500,"message":"auth: user name is empty","http_status":"Internal Server Error"}}"#
        );
        assert_eq!(
            http_status(Code::FailedPrecondition),
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(http_status(Code::OutOfRange), StatusCode::BAD_REQUEST);
    }
}
