//! A lean unary gRPC client straight on HTTP/2, for the closed-loop workloads.
//!
//! The load generator shares the machine with the server it measures, so every
//! microsecond it spends per request is taken from the server. A tonic `Channel` routes
//! each call through a buffer task and hyper's client dispatcher before it reaches the
//! HTTP/2 connection; here a call opens its stream on the connection's `h2` handle
//! directly: one length-prefixed message out, one in, `grpc-status` from the trailers
//! (or from the headers of a trailers-only answer). Streaming calls (watch) still use
//! tonic.

use std::time::Duration;

use anyhow::Context as _;
use bytes::{BufMut as _, Bytes, BytesMut};
use h2::client::SendRequest;
use http::{HeaderMap, Request};
use tonic::{Code, Status};

/// One HTTP/2 connection to an endpoint, shared by the clients given clones of it.
#[derive(Clone, Debug)]
pub struct Conn {
    send: SendRequest<Bytes>,
    authority: String,
}

/// Opens an HTTP/2 connection (prior knowledge, as gRPC over plain TCP does) to `url`
/// (`http://host:port`), with the connection's task spawned on the current runtime.
///
/// # Errors
/// Connect or handshake failure, or a URL that is not `http://host:port`.
pub async fn dial(url: &str, timeout: Duration) -> anyhow::Result<Conn> {
    let authority = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: the lean client speaks plain http only"))?
        .trim_end_matches('/')
        .to_owned();
    let tcp = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&authority))
        .await
        .with_context(|| format!("connecting to {authority} timed out"))?
        .with_context(|| format!("cannot connect to {authority}"))?;
    tcp.set_nodelay(true)?;
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(16 << 20)
        .handshake::<_, Bytes>(tcp)
        .await
        .with_context(|| format!("HTTP/2 handshake with {authority}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Conn { send, authority })
}

impl Conn {
    /// Calls the unary method `path` (`/package.Service/Method`) with `request`.
    ///
    /// # Errors
    /// The call's gRPC status when it is not OK; `Unavailable` for a broken connection
    /// and `Internal` for an answer that is not gRPC.
    pub async fn unary<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        path: &str,
        request: &Req,
    ) -> Result<Resp, Status> {
        let mut body = BytesMut::with_capacity(5 + request.encoded_len());
        body.put_u8(0);
        body.put_u32(u32::try_from(request.encoded_len()).unwrap_or(u32::MAX));
        request
            .encode(&mut body)
            .map_err(|error| Status::internal(error.to_string()))?;
        let head = Request::post(format!("http://{}{path}", self.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .map_err(|error| Status::internal(error.to_string()))?;
        let mut send = self.send.clone().ready().await.map_err(unavailable)?;
        let (response, mut stream) = send.send_request(head, false).map_err(unavailable)?;
        stream.send_data(body.freeze(), true).map_err(unavailable)?;
        let response = response.await.map_err(unavailable)?;
        if response.status() != http::StatusCode::OK {
            return Err(Status::internal(format!(
                "HTTP status {}",
                response.status()
            )));
        }
        if let Some(status) = status_of(response.headers()) {
            // A trailers-only answer: an error before any message.
            return Err(status);
        }
        let mut incoming = response.into_body();
        let mut message = BytesMut::new();
        while let Some(chunk) = incoming.data().await {
            let chunk = chunk.map_err(unavailable)?;
            let _ = incoming.flow_control().release_capacity(chunk.len());
            message.extend_from_slice(&chunk);
        }
        let trailers = incoming.trailers().await.map_err(unavailable)?;
        match trailers.as_ref().and_then(status_of) {
            Some(status) => return Err(status),
            None if trailers.is_none() => return Err(Status::internal("no grpc-status")),
            None => {}
        }
        if message.len() < 5 || message[0] != 0 {
            return Err(Status::internal("no message, or a compressed one"));
        }
        Resp::decode(&message[5..]).map_err(|error| Status::internal(error.to_string()))
    }
}

/// The status in `headers` when it is not OK (`None` for OK or no `grpc-status` at all;
/// the caller tells these apart where it matters).
fn status_of(headers: &HeaderMap) -> Option<Status> {
    let code = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    if code == 0 {
        return None;
    }
    let message = headers
        .get("grpc-message")
        .and_then(|value| value.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    Some(Status::new(Code::from_i32(code), message))
}

/// gRPC's percent-encoding of `grpc-message`.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unavailable(error: h2::Error) -> Status {
    Status::unavailable(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_message_is_percent_decoded() {
        assert_eq!(
            percent_decode("etcdserver: key not found%0Aline%"),
            "etcdserver: key not found\nline%"
        );
        assert_eq!(percent_decode("100%25"), "100%");
    }

    #[test]
    fn ok_status_is_none_and_errors_carry_code_and_message() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", "0".parse().unwrap());
        assert!(status_of(&headers).is_none());
        headers.insert("grpc-status", "9".parse().unwrap());
        headers.insert("grpc-message", "etcdserver:%20no%20leader".parse().unwrap());
        let status = status_of(&headers).unwrap();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(status.message(), "etcdserver: no leader");
    }
}
