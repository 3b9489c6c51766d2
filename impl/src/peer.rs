//! The peer transport: how members send each other Raft messages over
//! `--listen-peer-urls`.
//!
//! One TCP stream (TLS over TCP for an `https://` peer URL) per ordered pair of members
//! carries the messages of one sender to one receiver. The sender dials the receiver's
//! peer URL and opens with a handshake; the receiver answers one status byte; then frames
//! follow, one way only:
//!
//! ```text
//! handshake = magic:"OXRAFT01" from:u64 to:u64 cluster:u64       (all big-endian)
//! answer    = 0:u8 (accepted) | 1:u8 (cluster id mismatch) | 2:u8 (not the member named)
//!           | 3:u8 (a plain handshake on an https:// listener: TLS is required)
//! frame     = 0:u8 len:u32 message                               (Message::encode)
//!           | 1:u8 len:u32 message file_len:u64 file             (Snap with its file)
//! ```
//!
//! A `Snap` message names the snapshot file in its data (see
//! `crate::snapshot::save_for_log_compaction`); the frame carries the file itself,
//! which the receiver writes into its own snap dir under the same name before the
//! message reaches Raft.
//!
//! Each peer has a sender task with a bounded queue: the node loop never waits on the
//! network ([`Transport::send`] drops a message when the queue is full or the peer is
//! unknown, and Raft resends what matters). A broken or refused connection is dialled
//! again with exponential back-off (50 ms up to 1 s), cycling through the peer's URLs;
//! messages queued while no connection is up are dropped.
//!
//! The peer port also serves HTTP (`/version`, `/members`, etcd's `/members/hashkv` for
//! the corruption checks of [`crate::corruption`], the lease forwarding of
//! [`forward_lease_renew`]): an accepted connection that does not open with the magic
//! is handed to the HTTP router ([`serve`]).
//!
//! Peer TLS: an `https://` listener (see `crate::tls::peer_tls`) completes a TLS
//! handshake first (checking the dialler's client certificate when
//! `--peer-trusted-ca-file` is given) and then classifies the decrypted stream the same
//! way; the dialler uses TLS for `https://` peer URLs (and for lease forwarding to them).
//! Nothing falls back to plain TCP: a plain handshake on an `https://` listener is
//! answered 3 and closed, a TLS handshake on an `http://` listener is closed, and both
//! sides log why.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use oxetcd_spec::raft::{Message, MessageKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use crate::config::url::{Scheme, Url};
use crate::node_loop::NodeHandle;

/// The first bytes of a Raft stream.
pub const MAGIC: &[u8; 8] = b"OXRAFT01";
/// Messages queued per peer before [`Transport::send`] drops.
const QUEUE: usize = 4096;
/// Largest encoded message accepted (etcd's default request limit is far below).
const MAX_MESSAGE_BYTES: u32 = 256 * 1024 * 1024;
/// First and last back-off between dial attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Time allowed to connect, handshake, or write one frame that is not a snapshot.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed to write one snapshot frame.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(300);
/// Time an accepted connection has to show its first bytes.
const CLASSIFY_TIMEOUT: Duration = Duration::from_secs(10);

const FRAME_MESSAGE: u8 = 0;
const FRAME_SNAPSHOT: u8 = 1;

const ANSWER_OK: u8 = 0;
const ANSWER_CLUSTER_MISMATCH: u8 = 1;
const ANSWER_WRONG_MEMBER: u8 = 2;
const ANSWER_TLS_REQUIRED: u8 = 3;

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// A peer connection, plain or TLS.
pub trait PeerIo: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> PeerIo for T {}

/// What dials `https://` peer URLs (`None`: no peer TLS client configuration).
pub type DialTls = Option<Arc<rustls::ClientConfig>>;

/// Sends Raft messages to the other members. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Transport {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    member_id: u64,
    cluster_id: u64,
    snap_dir: PathBuf,
    tls: DialTls,
    peers: RwLock<BTreeMap<u64, Peer>>,
    /// The runtime the sender tasks run on (the one that made the transport, also when
    /// the node loop's own runtime adds a peer).
    runtime: tokio::runtime::Handle,
    /// Messages dropped (queue full or unknown peer).
    dropped: AtomicU64,
}

#[derive(Debug)]
struct Peer {
    urls: Vec<Url>,
    queue: mpsc::Sender<Message>,
    task: tokio::task::AbortHandle,
    /// Since when the stream to this peer has been up (`None` while it is down): etcd's
    /// `ActiveSince`.
    active_since: ActiveSince,
}

/// When a peer's stream came up, shared by its sender task and the transport.
type ActiveSince = Arc<Mutex<Option<Instant>>>;

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Transport {
    /// A transport for member `member_id` of cluster `cluster_id`; snapshot files are
    /// read from and written to `snap_dir`. Peers are added with [`Transport::set_peer`].
    /// Must run on a tokio runtime: the peers' sender tasks run on it.
    pub fn new(member_id: u64, cluster_id: u64, snap_dir: PathBuf) -> Transport {
        Transport::with_tls(member_id, cluster_id, snap_dir, None)
    }

    /// As [`Transport::new`], dialling `https://` peer URLs with `tls` (the client side
    /// of `crate::tls::peer_tls`).
    pub fn with_tls(member_id: u64, cluster_id: u64, snap_dir: PathBuf, tls: DialTls) -> Transport {
        Transport {
            inner: Arc::new(Inner {
                member_id,
                cluster_id,
                snap_dir,
                tls,
                peers: RwLock::new(BTreeMap::new()),
                runtime: tokio::runtime::Handle::current(),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// This member's id.
    pub fn member_id(&self) -> u64 {
        self.inner.member_id
    }

    /// The cluster id the handshake checks.
    pub fn cluster_id(&self) -> u64 {
        self.inner.cluster_id
    }

    /// The TLS configuration for dialling `https://` peer URLs.
    pub fn tls(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.inner.tls.as_ref()
    }

    /// Adds member `id` reachable at `urls`, or changes its URLs (the stream is dialled
    /// again). This member itself is ignored.
    pub fn set_peer(&self, id: u64, urls: Vec<Url>) {
        if id == self.inner.member_id || urls.is_empty() {
            return;
        }
        let Ok(mut peers) = self.inner.peers.write() else {
            return;
        };
        if peers.get(&id).is_some_and(|peer| peer.urls == urls) {
            return;
        }
        let (queue, receiver) = mpsc::channel(QUEUE);
        let active_since = ActiveSince::default();
        let sender = Sender {
            active_since: active_since.clone(),
            from: self.inner.member_id,
            to: id,
            cluster_id: self.inner.cluster_id,
            urls: urls.clone(),
            snap_dir: self.inner.snap_dir.clone(),
            tls: self.inner.tls.clone(),
        };
        let task = self
            .inner
            .runtime
            .spawn(sender.run(receiver))
            .abort_handle();
        peers.insert(
            id,
            Peer {
                urls,
                queue,
                task,
                active_since,
            },
        );
    }

    /// Forgets member `id` (removed from the cluster): its stream is closed.
    pub fn remove_peer(&self, id: u64) {
        if let Ok(mut peers) = self.inner.peers.write() {
            peers.remove(&id);
        }
    }

    /// The peer URLs known for member `id`.
    pub fn peer_urls(&self, id: u64) -> Option<Vec<Url>> {
        let peers = self.inner.peers.read().ok()?;
        peers.get(&id).map(|peer| peer.urls.clone())
    }

    /// The ids of the known peers.
    pub fn peer_ids(&self) -> Vec<u64> {
        self.inner
            .peers
            .read()
            .map(|peers| peers.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The peers whose stream has been up for at least `at_least` (etcd's
    /// `numConnectedSince` / `isConnectedFullySince` count these).
    pub fn connected_for(&self, at_least: Duration) -> BTreeSet<u64> {
        let Ok(peers) = self.inner.peers.read() else {
            return BTreeSet::new();
        };
        peers
            .iter()
            .filter(|(_, peer)| {
                peer.active_since
                    .lock()
                    .ok()
                    .and_then(|since| *since)
                    .is_some_and(|since| since.elapsed() >= at_least)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Messages dropped so far (queue full or unknown peer).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Queues `message` for its recipient without waiting; drops it when the queue is
    /// full or the recipient is unknown (Raft retransmits what matters).
    pub fn send(&self, message: Message) {
        let to = message.to.0;
        let sent = self.inner.peers.read().ok().is_some_and(|peers| {
            peers
                .get(&to)
                .is_some_and(|peer| peer.queue.try_send(message).is_ok())
        });
        if !sent {
            let dropped = self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            if dropped.is_power_of_two() {
                tracing::debug!("rafthttp: dropped a message to {to:x} ({dropped} so far)");
            }
        }
    }
}

/// One peer's sender task.
struct Sender {
    active_since: ActiveSince,
    from: u64,
    to: u64,
    cluster_id: u64,
    urls: Vec<Url>,
    snap_dir: PathBuf,
    tls: DialTls,
}

#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error(
        "the URL is https but this member has no peer TLS client configuration \
         (--peer-cert-file/--peer-key-file with --peer-trusted-ca-file, or --peer-auto-tls)"
    )]
    NoTls,
    #[error("the peer serves TLS on this URL (it must be given as https://)")]
    TlsRequired,
    #[error("request cluster ID mismatch (peer {peer:x})")]
    ClusterMismatch { peer: u64 },
    #[error("the peer at this URL is not member {peer:x}")]
    WrongMember { peer: u64 },
    #[error("unknown handshake answer {0}")]
    BadAnswer(u8),
}

impl Sender {
    async fn run(self, mut queue: mpsc::Receiver<Message>) {
        let mut backoff = BACKOFF_MIN;
        let mut attempt = 0usize;
        let mut reported = false;
        loop {
            let url = &self.urls[attempt % self.urls.len()];
            match self.connect(url).await {
                Ok(stream) => {
                    tracing::info!(
                        "rafthttp: established a TCP streaming connection with peer {:x} ({url})",
                        self.to
                    );
                    backoff = BACKOFF_MIN;
                    reported = false;
                    self.set_active(Some(Instant::now()));
                    let written = self.write_loop(stream, &mut queue).await;
                    self.set_active(None);
                    match written {
                        Ok(()) => return,
                        Err(error) => tracing::warn!(
                            "rafthttp: lost the TCP streaming connection with peer {:x}: {error}",
                            self.to
                        ),
                    }
                }
                Err(error) => {
                    if !reported {
                        tracing::warn!(
                            "rafthttp: failed to dial {:x} on stream ({url}): {error}",
                            self.to
                        );
                        reported = true;
                    }
                    attempt = attempt.wrapping_add(1);
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
            // What queued up while no stream was up is stale: Raft resends.
            loop {
                match queue.try_recv() {
                    Ok(_) => {}
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                }
            }
        }
    }

    fn set_active(&self, since: Option<Instant>) {
        if let Ok(mut active) = self.active_since.lock() {
            *active = since;
        }
    }

    async fn connect(&self, url: &Url) -> Result<Box<dyn PeerIo>, SendError> {
        let dial = async {
            let mut stream = dial(url, self.tls.as_ref()).await?;
            let mut hello = Vec::with_capacity(32);
            hello.extend_from_slice(MAGIC);
            hello.extend_from_slice(&self.from.to_be_bytes());
            hello.extend_from_slice(&self.to.to_be_bytes());
            hello.extend_from_slice(&self.cluster_id.to_be_bytes());
            stream.write_all(&hello).await?;
            let answer = stream.read_u8().await?;
            Ok::<_, SendError>((stream, answer))
        };
        let (stream, answer) = tokio::time::timeout(IO_TIMEOUT, dial)
            .await
            .map_err(|_| SendError::Timeout)??;
        match answer {
            ANSWER_OK => Ok(stream),
            ANSWER_CLUSTER_MISMATCH => Err(SendError::ClusterMismatch { peer: self.to }),
            ANSWER_WRONG_MEMBER => Err(SendError::WrongMember { peer: self.to }),
            ANSWER_TLS_REQUIRED => Err(SendError::TlsRequired),
            other => Err(SendError::BadAnswer(other)),
        }
    }

    /// Writes queued messages until the queue closes (`Ok`) or the stream breaks.
    async fn write_loop(
        &self,
        stream: Box<dyn PeerIo>,
        queue: &mut mpsc::Receiver<Message>,
    ) -> Result<(), SendError> {
        let (mut read_half, write_half) = tokio::io::split(stream);
        let mut writer = BufWriter::with_capacity(256 * 1024, write_half);
        let mut probe = [0u8; 1];
        loop {
            tokio::select! {
                message = queue.recv() => {
                    let Some(message) = message else { return Ok(()) };
                    self.write_timed(&mut writer, message).await?;
                    // Batch whatever else is queued into the same flush.
                    while let Ok(message) = queue.try_recv() {
                        self.write_timed(&mut writer, message).await?;
                    }
                    tokio::time::timeout(IO_TIMEOUT, writer.flush())
                        .await
                        .map_err(|_| SendError::Timeout)??;
                }
                // The receiver never writes after its answer: a read that returns means
                // the stream is closed or broken.
                read = read_half.read(&mut probe) => {
                    return Err(match read {
                        Ok(_) => SendError::Io(std::io::ErrorKind::UnexpectedEof.into()),
                        Err(error) => SendError::Io(error),
                    });
                }
            }
        }
    }

    async fn write_timed(
        &self,
        writer: &mut PeerWriter,
        message: Message,
    ) -> Result<(), SendError> {
        let limit = if message.kind == MessageKind::Snap {
            SNAPSHOT_TIMEOUT
        } else {
            IO_TIMEOUT
        };
        tokio::time::timeout(limit, self.write_frame(writer, &message))
            .await
            .map_err(|_| SendError::Timeout)?
    }

    async fn write_frame(
        &self,
        writer: &mut PeerWriter,
        message: &Message,
    ) -> Result<(), SendError> {
        let bytes = message.encode();
        let len = u32::try_from(bytes.len())
            .map_err(|_| std::io::Error::other("message too large to send"))?;
        let file = match message.snapshot() {
            Some(snapshot) if message.kind == MessageKind::Snap => {
                snapshot_file_name(&snapshot.data).map(|name| self.snap_dir.join(name))
            }
            _ => None,
        };
        let Some(path) = file else {
            writer.write_u8(FRAME_MESSAGE).await?;
            writer.write_u32(len).await?;
            writer.write_all(&bytes).await?;
            return Ok(());
        };
        let mut file = tokio::fs::File::open(&path).await?;
        let file_len = file.metadata().await?.len();
        tracing::info!(
            "rafthttp: start to send database snapshot [index: {}, to {:x}, size {file_len}]",
            message.snapshot().map_or(0, |s| s.metadata.index.0),
            self.to
        );
        writer.write_u8(FRAME_SNAPSHOT).await?;
        writer.write_u32(len).await?;
        writer.write_all(&bytes).await?;
        writer.write_u64(file_len).await?;
        let copied = tokio::io::copy(&mut (&mut file).take(file_len), writer).await?;
        if copied != file_len {
            return Err(SendError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        writer.flush().await?;
        Ok(())
    }
}

/// The buffered write side of a stream to a peer.
type PeerWriter = BufWriter<tokio::io::WriteHalf<Box<dyn PeerIo>>>;

/// Why a [`request`] to a peer port failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The connection or its TLS handshake failed.
    #[error("dial tcp {address}: {error}")]
    Dial {
        /// The peer's socket address.
        address: String,
        /// What the dial reported.
        error: String,
    },
    /// Writing the request or reading the answer failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The answer is not an HTTP response.
    #[error("malformed HTTP response")]
    Malformed,
}

/// A peer's answer to a [`request`].
#[derive(Debug)]
pub struct Answer {
    /// The status code (200, 503, …).
    pub status: u16,
    /// The header lines after the status line.
    pub headers: String,
    /// The body, whole.
    pub body: Vec<u8>,
}

impl Answer {
    /// The value of header `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(key, _)| key.trim().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim())
    }
}

/// One HTTP/1.1 request to the peer port at `url` (over TLS with `tls` for an
/// `https://` URL), answered whole: `Connection: close`, read to the end. A GET, or a
/// POST of `body` (its content type and bytes).
///
/// # Errors
/// The dial's, the exchange's, or a malformed answer.
pub async fn request(
    url: &Url,
    tls: Option<&Arc<rustls::ClientConfig>>,
    path: &str,
    body: Option<(&str, &[u8])>,
) -> Result<Answer, RequestError> {
    let method = if body.is_some() { "POST" } else { "GET" };
    exchange(url, tls, method, path, body).await
}

/// A GET of `path` carrying `body` (its content type and bytes), as etcd asks a peer's
/// `/members/hashkv`; otherwise as [`request`].
///
/// # Errors
/// As [`request`].
pub async fn get_with_body(
    url: &Url,
    tls: Option<&Arc<rustls::ClientConfig>>,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Result<Answer, RequestError> {
    exchange(url, tls, "GET", path, Some((content_type, body))).await
}

async fn exchange(
    url: &Url,
    tls: Option<&Arc<rustls::ClientConfig>>,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
) -> Result<Answer, RequestError> {
    let address = url.socket_address();
    let mut stream = dial(url, tls).await.map_err(|error| RequestError::Dial {
        address: address.clone(),
        error: error.to_string(),
    })?;
    let mut message =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    if let Some((content_type, bytes)) = body {
        message.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            bytes.len()
        ));
    }
    message.push_str("\r\n");
    let mut message = message.into_bytes();
    message.extend_from_slice(body.map_or(&[][..], |(_, bytes)| bytes));
    stream.write_all(&message).await?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response).await {
        Ok(_) => {}
        // A TLS peer that closes without close_notify after a whole answer.
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {
        }
        Err(error) => return Err(error.into()),
    }
    parse_answer(&response).ok_or(RequestError::Malformed)
}

/// POSTs `body` to `path` on the leader's peer port, trying each of its peer URLs (a
/// request that reached a follower and only the leader can answer, as etcd forwards
/// lease renewals and TimeToLive); the body of the first 200 answer.
///
/// # Errors
/// The last URL's failure (unreachable, timed out, or the leader's refusal text), or
/// that no leader or peer URL of it is known.
pub async fn ask_leader(
    node: &NodeHandle,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Result<Vec<u8>, String> {
    let leader = node.status.leader.load(Ordering::Relaxed);
    let transport = node
        .transport
        .as_ref()
        .filter(|_| leader != 0)
        .ok_or_else(|| "no leader".to_owned())?;
    let urls = transport
        .peer_urls(leader)
        .ok_or_else(|| "no peer URL of the leader".to_owned())?;
    let tls = transport.inner.tls.as_ref();
    let mut last_error = String::from("no peer URL of the leader");
    for url in urls {
        let address = url.socket_address();
        let asked = request(&url, tls, path, Some((content_type, body)));
        last_error = match tokio::time::timeout(IO_TIMEOUT, asked).await {
            Ok(Ok(answer)) if answer.status == 200 => return Ok(answer.body),
            Ok(Ok(answer)) => format!(
                "{address}: {}",
                String::from_utf8_lossy(&answer.body).trim()
            ),
            Ok(Err(error)) => format!("{address}: {error}"),
            Err(_) => format!("{address}: timed out"),
        };
    }
    Err(last_error)
}

/// Splits a whole HTTP/1.1 response into status, header lines and body.
#[must_use]
pub fn parse_answer(response: &[u8]) -> Option<Answer> {
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..split]).ok()?;
    let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    let status = status_line.split_whitespace().nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        headers: headers.to_owned(),
        body: response[split + 4..].to_vec(),
    })
}

/// Connects to `url`: TCP, then TLS with `tls` for an `https://` URL.
async fn dial(
    url: &Url,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Box<dyn PeerIo>, SendError> {
    if url.scheme != Scheme::Https {
        let stream = TcpStream::connect(url.socket_address()).await?;
        stream.set_nodelay(true)?;
        return Ok(Box::new(stream));
    }
    let config = tls.ok_or(SendError::NoTls)?;
    let name = rustls::pki_types::ServerName::try_from(url.host.clone()).map_err(|error| {
        SendError::Handshake(std::io::Error::other(format!(
            "{:?} is not a valid server name: {error}",
            url.host
        )))
    })?;
    let stream = TcpStream::connect(url.socket_address()).await?;
    stream.set_nodelay(true)?;
    let stream = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, stream)
        .await
        .map_err(|error| {
            if error.kind() == std::io::ErrorKind::UnexpectedEof {
                // An http:// listener closes on a TLS handshake.
                SendError::Handshake(std::io::Error::other(
                    "the peer closed the connection (does it serve this URL as http://?)",
                ))
            } else {
                SendError::Handshake(error)
            }
        })?;
    Ok(Box::new(stream))
}

/// The snapshot file a Raft snapshot's data names, if it is a plain file name.
pub fn snapshot_file_name(data: &[u8]) -> Option<&str> {
    let name = std::str::from_utf8(data).ok()?;
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
    plain.then_some(name)
}

/// Serves the peer port: Raft streams go to `node`, every other connection to `http`.
/// With `tls` (an `https://` listen URL), every connection must open with a TLS
/// handshake, and what it carries is classified after the handshake.
pub async fn serve(
    listener: TcpListener,
    node: NodeHandle,
    http: axum::Router,
    tls: Option<TlsAcceptor>,
) {
    let local_addr = listener.local_addr().ok();
    let (http_sender, http_receiver) = mpsc::channel(64);
    let Some(transport) = node.transport.clone() else {
        return;
    };
    if let Some(addr) = local_addr {
        let http_listener = HttpListener {
            accepted: http_receiver,
            addr,
        };
        tokio::spawn(async move {
            let _ = axum::serve(http_listener, http).await;
        });
    }
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!("rafthttp: accept on the peer port: {error}");
                tokio::time::sleep(BACKOFF_MIN).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let node = node.clone();
        let transport = transport.clone();
        let http_sender = http_sender.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let stream: Box<dyn PeerIo> = match (opening(&stream).await, tls) {
                (None, _) => return,
                (Some(Opening::Raft), None) => {
                    if let Err(error) = receive(Box::new(stream), &node, &transport).await {
                        tracing::debug!("rafthttp: stream from {addr} ended: {error}");
                    }
                    return;
                }
                (Some(Opening::Other), None) => Box::new(stream),
                (Some(Opening::Tls), None) => {
                    tracing::warn!(
                        "rafthttp: rejected a TLS connection from {addr}: this peer URL is http:// (the sender names it https://)"
                    );
                    return;
                }
                (Some(opening), Some(acceptor)) => {
                    match accept_tls(stream, addr, opening, &acceptor).await {
                        Some(stream) => stream,
                        None => return,
                    }
                }
            };
            let Ok(Ok(head)) = tokio::time::timeout(CLASSIFY_TIMEOUT, read_head(stream)).await
            else {
                return;
            };
            if head.head == MAGIC {
                if let Err(error) = receive(Box::new(head), &node, &transport).await {
                    tracing::debug!("rafthttp: stream from {addr} ended: {error}");
                }
            } else {
                let head: Box<dyn PeerIo> = Box::new(head);
                let _ = http_sender.send((head, addr)).await;
            }
        });
    }
}

/// How an accepted connection opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    /// With [`MAGIC`].
    Raft,
    /// With a TLS handshake record.
    Tls,
    /// With anything else (HTTP).
    Other,
}

/// How the connection opens (`None`: closed or silent too long).
async fn opening(stream: &TcpStream) -> Option<Opening> {
    let mut head = [0u8; MAGIC.len()];
    let peek = async {
        loop {
            let n = stream.peek(&mut head).await.ok()?;
            if n == 0 {
                return None;
            }
            if head[0] == TLS_HANDSHAKE {
                return Some(Opening::Tls);
            }
            if n >= MAGIC.len() || head[..n] != MAGIC[..n] {
                return Some(if head[..n] == MAGIC[..] {
                    Opening::Raft
                } else {
                    Opening::Other
                });
            }
            // A prefix of the magic: wait for more bytes.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(CLASSIFY_TIMEOUT, peek).await.ok()?
}

/// Completes the TLS handshake of a connection to an `https://` listener; a connection
/// that does not open with one is refused (a plain Raft handshake is told so) and logged
/// as etcd logs it.
async fn accept_tls(
    mut stream: TcpStream,
    addr: SocketAddr,
    opening: Opening,
    acceptor: &TlsAcceptor,
) -> Option<Box<dyn PeerIo>> {
    let rejected = |error: &dyn std::fmt::Display| {
        tracing::info!(
            "embed: rejected connection from \"{addr}\" (error \"{error}\", ServerName \"\")"
        );
    };
    if opening != Opening::Tls {
        rejected(&"tls: first record does not look like a TLS handshake");
        if opening == Opening::Raft {
            tracing::warn!(
                "rafthttp: a member at {addr} dialled this https:// peer URL without TLS (it names the URL http://)"
            );
            let _ = stream.write_u8(ANSWER_TLS_REQUIRED).await;
        }
        return None;
    }
    match tokio::time::timeout(IO_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(Box::new(stream)),
        Ok(Err(error)) => {
            rejected(&error);
            None
        }
        Err(_) => {
            rejected(&"TLS handshake timeout");
            None
        }
    }
}

/// A stream whose first bytes were read to classify it, handed on with them.
struct Head {
    head: Vec<u8>,
    read: usize,
    inner: Box<dyn PeerIo>,
}

/// Reads the first bytes of `stream`: up to [`MAGIC`]'s length while they match it.
async fn read_head(mut stream: Box<dyn PeerIo>) -> std::io::Result<Head> {
    let mut head = Vec::with_capacity(MAGIC.len());
    let mut buffer = [0u8; MAGIC.len()];
    while head.len() < MAGIC.len() && MAGIC.starts_with(&head) {
        let n = stream.read(&mut buffer[..MAGIC.len() - head.len()]).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..n]);
    }
    Ok(Head {
        head,
        read: 0,
        inner: stream,
    })
}

impl AsyncRead for Head {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.read < this.head.len() {
            let rest = &this.head[this.read..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.read += n;
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Head {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Reads one Raft stream and steps its messages into the node.
async fn receive(
    mut stream: Box<dyn PeerIo>,
    node: &NodeHandle,
    transport: &Transport,
) -> std::io::Result<()> {
    let mut hello = [0u8; 32];
    tokio::time::timeout(IO_TIMEOUT, stream.read_exact(&mut hello))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let word = |i: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&hello[i..i + 8]);
        u64::from_be_bytes(bytes)
    };
    let (from, to, cluster) = (word(8), word(16), word(24));
    let answer = if cluster != transport.cluster_id() {
        tracing::error!(
            "rafthttp: request cluster ID mismatch (got {cluster:x} want {:x}) from {from:x}",
            transport.cluster_id()
        );
        ANSWER_CLUSTER_MISMATCH
    } else if to != transport.member_id() {
        tracing::error!(
            "rafthttp: stream from {from:x} is for member {to:x}, this is {:x}",
            transport.member_id()
        );
        ANSWER_WRONG_MEMBER
    } else {
        ANSWER_OK
    };
    stream.write_u8(answer).await?;
    if answer != ANSWER_OK {
        return Ok(());
    }
    let mut reader = tokio::io::BufReader::with_capacity(256 * 1024, stream);
    loop {
        let kind = match reader.read_u8().await {
            Ok(kind) => kind,
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(error) => return Err(error),
        };
        let len = reader.read_u32().await?;
        if len > MAX_MESSAGE_BYTES {
            return Err(std::io::Error::other(format!(
                "message of {len} bytes from {from:x}"
            )));
        }
        let mut bytes = vec![0u8; len as usize];
        reader.read_exact(&mut bytes).await?;
        let message = Message::decode(&bytes).map_err(|error| {
            std::io::Error::other(format!("undecodable message from {from:x}: {error}"))
        })?;
        match kind {
            FRAME_MESSAGE => {}
            FRAME_SNAPSHOT => {
                let file_len = reader.read_u64().await?;
                receive_snapshot_file(&mut reader, &message, file_len, &transport.inner.snap_dir)
                    .await?;
            }
            other => {
                return Err(std::io::Error::other(format!(
                    "unknown frame kind {other} from {from:x}"
                )));
            }
        }
        if message.from.0 != from || message.to.0 != transport.member_id() {
            continue;
        }
        if node.step(message).await.is_err() {
            return Ok(());
        }
    }
}

/// Writes the snapshot file that follows a `Snap` message into `snap_dir` (durably,
/// under the name the snapshot's data gives).
async fn receive_snapshot_file(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    message: &Message,
    file_len: u64,
    snap_dir: &Path,
) -> std::io::Result<()> {
    let name = message
        .snapshot()
        .and_then(|snapshot| snapshot_file_name(&snapshot.data))
        .ok_or_else(|| std::io::Error::other("snapshot frame without a file name"))?;
    tokio::fs::create_dir_all(snap_dir).await?;
    let partial = snap_dir.join(format!("{name}.recv"));
    let mut file = tokio::fs::File::create(&partial).await?;
    let copied = tokio::io::copy(&mut reader.take(file_len), &mut file).await?;
    if copied != file_len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    file.sync_all().await?;
    drop(file);
    // A damaged file never reaches Raft: the member would record a snapshot it cannot
    // install.
    let check = partial.clone();
    tokio::task::spawn_blocking(move || crate::snapshot::verify_file(&check))
        .await
        .map_err(std::io::Error::other)?
        .map_err(|error| std::io::Error::other(format!("received snapshot {name}: {error}")))?;
    tokio::fs::rename(&partial, snap_dir.join(name)).await?;
    tokio::fs::File::open(snap_dir).await?.sync_all().await?;
    tracing::info!(
        "rafthttp: received and saved database snapshot [index: {}, from {:x}, size {file_len}]",
        message.snapshot().map_or(0, |s| s.metadata.index.0),
        message.from.0
    );
    Ok(())
}

/// The peer port's HTTP connections, as classified by [`serve`].
struct HttpListener {
    accepted: mpsc::Receiver<(Box<dyn PeerIo>, SocketAddr)>,
    addr: SocketAddr,
}

impl axum::serve::Listener for HttpListener {
    type Io = Box<dyn PeerIo>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// Asks the leader, over its peer port, to renew lease `id` (a keep-alive that reached
/// a follower, as etcd forwards it); returns the TTL the leader granted (0: unknown
/// lease).
///
/// # Errors
/// A message when the leader is unknown or unreachable, or refused.
pub async fn forward_lease_renew(node: &NodeHandle, id: i64) -> Result<i64, String> {
    let body = ask_leader(
        node,
        LEASE_RENEW_PATH,
        "text/plain",
        id.to_string().as_bytes(),
    )
    .await?;
    let text = String::from_utf8_lossy(&body);
    text.trim()
        .parse()
        .map_err(|_| format!("malformed TTL {text:?}"))
}

/// The path of the peer port's lease renewal (body and answer: the id, then the TTL,
/// as decimal text).
pub const LEASE_RENEW_PATH: &str = "/oxetcd/lease/renew";

/// The peer port's own HTTP routes (merged with [`crate::http::router`]).
pub fn router(node: NodeHandle) -> axum::Router {
    axum::Router::new()
        .route(LEASE_RENEW_PATH, axum::routing::post(lease_renew_handler))
        .route(
            crate::join::MEMBERS_PATH,
            axum::routing::get(crate::join::members_handler),
        )
        .route(
            crate::corruption::HASHKV_PATH,
            axum::routing::any(crate::corruption::hashkv_handler),
        )
        .with_state(node)
}

async fn lease_renew_handler(
    axum::extract::State(node): axum::extract::State<NodeHandle>,
    body: String,
) -> (http::StatusCode, String) {
    let Ok(id) = body.trim().parse::<i64>() else {
        return (http::StatusCode::BAD_REQUEST, "bad lease id".into());
    };
    if !node.is_leader() {
        return (
            http::StatusCode::SERVICE_UNAVAILABLE,
            "lease: not primary".into(),
        );
    }
    let now_ms = node.now_ms();
    let Ok(mut state) = node.state.write() else {
        return (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "state lock poisoned".into(),
        );
    };
    match state.lease_renew(oxetcd_spec::lease::LeaseId(id), now_ms) {
        Ok(ttl) => (http::StatusCode::OK, ttl.to_string()),
        Err(oxetcd_spec::lease::LeaseError::NotFound) => (http::StatusCode::OK, "0".into()),
        Err(error) => (http::StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    }
}
