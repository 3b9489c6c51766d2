//! The gRPC server metrics etcd exposes on `/metrics` (from its Prometheus gRPC
//! interceptors): `grpc_server_started_total`, `grpc_server_handled_total` (by status
//! code), `grpc_server_msg_received_total` and `grpc_server_msg_sent_total`, labelled
//! with the method, its service and its type (`unary`, `server_stream`, `bidi_stream`).
//!
//! As in etcd, every method of the KV, Watch, Lease, Cluster, Maintenance, Auth and
//! `grpc.health.v1.Health` services is listed from the start with zeros (and every
//! status code of `grpc_server_handled_total`), while the methods registered later
//! (Lock, Election, and `AuthStatus`, which oxetcd serves from the 3.5 surface) appear
//! once called.
//!
//! The counts are taken by [`crate::http::count_grpc`] from each gRPC exchange on the
//! client port: started when the request arrives, a message per length-prefixed frame
//! in either direction, and handled with the `grpc-status` the response ends with; an
//! exchange dropped before it (the client went away) counts as `Canceled`, the code
//! etcd's handler returns then.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// How a method streams, as the `grpc_type` label names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Unary,
    ServerStream,
    BidiStream,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Unary => "unary",
            Kind::ServerStream => "server_stream",
            Kind::BidiStream => "bidi_stream",
        }
    }
}

/// One served method: service, method, type, and whether etcd lists it before any call.
struct Spec(&'static str, &'static str, Kind, bool);

/// Every gRPC method served on the client port, sorted by method then service (the
/// order of etcd's exposition).
const METHODS: &[Spec] = &{
    use Kind::{BidiStream, ServerStream, Unary};
    const AUTH: &str = "etcdserverpb.Auth";
    const CLUSTER: &str = "etcdserverpb.Cluster";
    const ELECTION: &str = "v3electionpb.Election";
    const HEALTH: &str = "grpc.health.v1.Health";
    const KV: &str = "etcdserverpb.KV";
    const LEASE: &str = "etcdserverpb.Lease";
    const LOCK: &str = "v3lockpb.Lock";
    const MAINTENANCE: &str = "etcdserverpb.Maintenance";
    [
        Spec("Alarm", MAINTENANCE, Unary, true),
        Spec("AuthDisable", AUTH, Unary, true),
        Spec("AuthEnable", AUTH, Unary, true),
        Spec("AuthStatus", AUTH, Unary, false),
        Spec("Authenticate", AUTH, Unary, true),
        Spec("Campaign", ELECTION, Unary, false),
        Spec("Check", HEALTH, Unary, true),
        Spec("Compact", KV, Unary, true),
        Spec("Defragment", MAINTENANCE, Unary, true),
        Spec("DeleteRange", KV, Unary, true),
        Spec("Hash", MAINTENANCE, Unary, true),
        Spec("HashKV", MAINTENANCE, Unary, true),
        Spec("Leader", ELECTION, Unary, false),
        Spec("LeaseGrant", LEASE, Unary, true),
        Spec("LeaseKeepAlive", LEASE, BidiStream, true),
        Spec("LeaseLeases", LEASE, Unary, true),
        Spec("LeaseRevoke", LEASE, Unary, true),
        Spec("LeaseTimeToLive", LEASE, Unary, true),
        Spec("Lock", LOCK, Unary, false),
        Spec("MemberAdd", CLUSTER, Unary, true),
        Spec("MemberList", CLUSTER, Unary, true),
        Spec("MemberPromote", CLUSTER, Unary, true),
        Spec("MemberRemove", CLUSTER, Unary, true),
        Spec("MemberUpdate", CLUSTER, Unary, true),
        Spec("MoveLeader", MAINTENANCE, Unary, true),
        Spec("Observe", ELECTION, ServerStream, false),
        Spec("Proclaim", ELECTION, Unary, false),
        Spec("Put", KV, Unary, true),
        Spec("Range", KV, Unary, true),
        Spec("Resign", ELECTION, Unary, false),
        Spec("RoleAdd", AUTH, Unary, true),
        Spec("RoleDelete", AUTH, Unary, true),
        Spec("RoleGet", AUTH, Unary, true),
        Spec("RoleGrantPermission", AUTH, Unary, true),
        Spec("RoleList", AUTH, Unary, true),
        Spec("RoleRevokePermission", AUTH, Unary, true),
        Spec("Snapshot", MAINTENANCE, ServerStream, true),
        Spec("Status", MAINTENANCE, Unary, true),
        Spec("Txn", KV, Unary, true),
        Spec("Unlock", LOCK, Unary, false),
        Spec("UserAdd", AUTH, Unary, true),
        Spec("UserChangePassword", AUTH, Unary, true),
        Spec("UserDelete", AUTH, Unary, true),
        Spec("UserGet", AUTH, Unary, true),
        Spec("UserGrantRole", AUTH, Unary, true),
        Spec("UserList", AUTH, Unary, true),
        Spec("UserRevokeRole", AUTH, Unary, true),
        Spec("Watch", "etcdserverpb.Watch", BidiStream, true),
        Spec("Watch", HEALTH, ServerStream, true),
    ]
};

/// Number of served methods.
const N: usize = METHODS.len();

/// gRPC status codes by number, with the names the `grpc_code` label uses.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The code a dropped exchange counts as.
const CANCELED: usize = 1;
/// The code an unreadable `grpc-status` counts as.
const UNKNOWN: usize = 2;

static STARTED: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
static RECEIVED: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
static SENT: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
static HANDLED: [[AtomicU64; CODES.len()]; N] =
    [const { [const { AtomicU64::new(0) }; CODES.len()] }; N];

/// A served method (an index into the method table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Method(usize);

impl Method {
    /// The method a gRPC request path (`/etcdserverpb.KV/Range`) names, if served.
    #[must_use]
    pub fn of_path(path: &str) -> Option<Method> {
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        METHODS
            .binary_search_by(|spec| (spec.0, spec.1).cmp(&(method, service)))
            .ok()
            .map(Method)
    }

    /// Counts a call started.
    pub fn started(self) {
        STARTED[self.0].fetch_add(1, Ordering::Relaxed);
    }

    /// A counter of the messages this call receives (and of their bytes, into
    /// `etcd_network_client_grpc_received_bytes_total`).
    #[must_use]
    pub fn received(self) -> Messages {
        Messages::counting(&RECEIVED[self.0], &crate::metrics::GRPC_RECEIVED_BYTES)
    }

    /// A counter of the messages this call sends (and of their bytes, into
    /// `etcd_network_client_grpc_sent_bytes_total`).
    #[must_use]
    pub fn sent(self) -> Messages {
        Messages::counting(&SENT[self.0], &crate::metrics::GRPC_SENT_BYTES)
    }

    /// Counts a call handled with status `code` (below `CODES.len()`).
    fn handled(self, code: usize) {
        if let Some(counter) = HANDLED[self.0].get(code) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Counts the messages of one direction of a call from its body's bytes (each message
/// is a 1-byte flag and a 4-byte big-endian length, then the message), and the bytes of
/// the messages without those 5-byte prefixes: etcd counts the bytes its gRPC codec
/// encodes and decodes, the messages only.
#[derive(Debug)]
pub struct Messages {
    counter: &'static AtomicU64,
    bytes: &'static AtomicU64,
    prefix: [u8; 5],
    prefix_len: usize,
    remaining: u64,
}

impl Messages {
    fn counting(counter: &'static AtomicU64, bytes: &'static AtomicU64) -> Messages {
        Messages {
            counter,
            bytes,
            prefix: [0; 5],
            prefix_len: 0,
            remaining: 0,
        }
    }

    /// Reads the next bytes of the body and counts the messages that begin in them and
    /// the message bytes among them.
    pub fn feed(&mut self, mut data: &[u8]) {
        let mut begun = 0;
        let mut message_bytes = 0;
        while !data.is_empty() {
            if self.remaining > 0 {
                let skip = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                data = &data[skip..];
                self.remaining -= skip as u64;
                message_bytes += skip as u64;
                continue;
            }
            let take = (self.prefix.len() - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&data[..take]);
            self.prefix_len += take;
            data = &data[take..];
            if self.prefix_len == self.prefix.len() {
                begun += 1;
                let [_, a, b, c, d] = self.prefix;
                self.remaining = u64::from(u32::from_be_bytes([a, b, c, d]));
                self.prefix_len = 0;
            }
        }
        if begun > 0 {
            self.counter.fetch_add(begun, Ordering::Relaxed);
        }
        if message_bytes > 0 {
            self.bytes.fetch_add(message_bytes, Ordering::Relaxed);
        }
    }
}

/// The outcome of one call: counted once, with the `grpc-status` it ended with, or as
/// `Canceled` when dropped before one was seen.
#[derive(Debug)]
pub struct Outcome {
    method: Method,
    counted: bool,
}

impl Outcome {
    /// A call of `method` whose status is not known yet.
    #[must_use]
    pub fn new(method: Method) -> Outcome {
        Outcome {
            method,
            counted: false,
        }
    }

    /// Counts the call as handled with `grpc_status` (the header's value), once.
    pub fn finish(&mut self, grpc_status: Option<&[u8]>) {
        if self.counted {
            return;
        }
        self.counted = true;
        let code = grpc_status
            .and_then(|value| std::str::from_utf8(value).ok())
            .and_then(|value| value.trim().parse::<usize>().ok())
            .filter(|code| *code < CODES.len())
            .unwrap_or(UNKNOWN);
        self.method.handled(code);
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if !self.counted {
            self.counted = true;
            self.method.handled(CANCELED);
        }
    }
}

/// Appends the four families in Prometheus text format, as etcd orders them.
pub fn write(text: &mut String) {
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let labels = |spec: &Spec| {
        format!(
            "grpc_method=\"{}\",grpc_service=\"{}\",grpc_type=\"{}\"",
            spec.0,
            spec.1,
            spec.2.label()
        )
    };
    let _ = writeln!(
        text,
        "# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.\n\
         # TYPE grpc_server_handled_total counter"
    );
    let mut codes: Vec<usize> = (0..CODES.len()).collect();
    codes.sort_by_key(|code| CODES[*code]);
    for code in codes {
        for (i, spec) in METHODS.iter().enumerate() {
            let count = load(&HANDLED[i][code]);
            if spec.3 || count > 0 {
                let _ = writeln!(
                    text,
                    "grpc_server_handled_total{{grpc_code=\"{}\",{}}} {count}",
                    CODES[code],
                    labels(spec)
                );
            }
        }
    }
    let families: [(&str, &str, &[AtomicU64; N]); 3] = [
        (
            "grpc_server_msg_received_total",
            "Total number of RPC stream messages received on the server.",
            &RECEIVED,
        ),
        (
            "grpc_server_msg_sent_total",
            "Total number of gRPC stream messages sent by the server.",
            &SENT,
        ),
        (
            "grpc_server_started_total",
            "Total number of RPCs started on the server.",
            &STARTED,
        ),
    ];
    for (name, help, counters) in families {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} counter");
        for (i, spec) in METHODS.iter().enumerate() {
            // A method etcd registers late has series once called.
            if spec.3 || load(&STARTED[i]) > 0 {
                let _ = writeln!(text, "{name}{{{}}} {}", labels(spec), load(&counters[i]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_listed_in_the_order_of_etcds_exposition_and_found_by_path() {
        let keys: Vec<(&str, &str)> = METHODS.iter().map(|spec| (spec.0, spec.1)).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        assert_eq!(METHODS.iter().filter(|spec| spec.3).count(), 41);
        let range = Method::of_path("/etcdserverpb.KV/Range").unwrap();
        assert_eq!(
            (METHODS[range.0].0, METHODS[range.0].1),
            ("Range", "etcdserverpb.KV")
        );
        assert_eq!(Method::of_path("/etcdserverpb.KV/Nothing"), None);
        assert_eq!(Method::of_path("/etcdserverpb.Lease/Range"), None);
        assert_eq!(Method::of_path("etcdserverpb.KV"), None);
    }

    #[test]
    fn messages_are_counted_from_length_prefixes_split_anywhere() {
        // Only this test uses Observe.
        let observe = Method::of_path("/v3electionpb.Election/Observe").unwrap();
        let before = SENT[observe.0].load(Ordering::Relaxed);
        let mut body = Vec::new();
        for message in [&b"abc"[..], b"", &[7u8; 300][..]] {
            body.push(0);
            body.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
            body.extend_from_slice(message);
        }
        static BYTES: AtomicU64 = AtomicU64::new(0);
        let mut messages = Messages::counting(&SENT[observe.0], &BYTES);
        for chunk in body.chunks(2) {
            messages.feed(chunk);
        }
        assert_eq!(SENT[observe.0].load(Ordering::Relaxed) - before, 3);
        // The messages' bytes, without their 5-byte prefixes.
        assert_eq!(BYTES.load(Ordering::Relaxed), 303);
        let mut whole = Messages::counting(&SENT[observe.0], &BYTES);
        whole.feed(&body);
        assert_eq!(SENT[observe.0].load(Ordering::Relaxed) - before, 6);
        assert_eq!(BYTES.load(Ordering::Relaxed), 606);
    }

    #[test]
    fn a_call_is_handled_once_with_its_status_or_as_canceled_when_dropped() {
        // Only this test uses Proclaim.
        let proclaim = Method::of_path("/v3electionpb.Election/Proclaim").unwrap();
        let count = |code: usize| HANDLED[proclaim.0][code].load(Ordering::Relaxed);
        let mut outcome = Outcome::new(proclaim);
        outcome.finish(Some(b"5"));
        outcome.finish(Some(b"0"));
        drop(outcome);
        assert_eq!((count(5), count(0), count(CANCELED)), (1, 0, 0));
        drop(Outcome::new(proclaim));
        assert_eq!(count(CANCELED), 1);
        Outcome::new(proclaim).finish(Some(b"not a code"));
        assert_eq!(count(UNKNOWN), 1);

        let mut text = String::new();
        write(&mut text);
        assert!(text.contains(
            "grpc_server_handled_total{grpc_code=\"NotFound\",grpc_method=\"Proclaim\",grpc_service=\"v3electionpb.Election\",grpc_type=\"unary\"} 1\n"
        ));
        assert!(
            !text.contains("grpc_code=\"Aborted\",grpc_method=\"Proclaim\""),
            "a method registered late lists only the codes it answered"
        );
    }
}
