//! A fault-injecting TCP proxy between cluster members' peer ports.
//!
//! Member `i` advertises its proxy's address as its peer URL, so every connection to
//! `i` from another member goes through proxy `i`. To isolate `i`, the proxy drops
//! connections to `i` and connections whose sender is `i`. The sender of a connection
//! is read from the `X-Server-From` header of its first HTTP request (etcd's peer
//! protocol sends it on every stream and pipeline request), or from the handshake of
//! oxetcd's peer streams (`OXRAFT01` then the sender's and receiver's IDs as big-endian
//! u64s); when a peer protocol carries neither, only the direction towards the isolated
//! member is cut.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Shared partition state of all peer proxies.
#[derive(Debug, Default)]
struct State {
    isolated: BTreeSet<usize>,
    ids: BTreeMap<u64, usize>,
}

/// The peer proxies of one cluster.
#[derive(Debug)]
pub struct PeerProxies {
    state: Arc<Mutex<State>>,
    epoch: watch::Sender<u64>,
    tasks: Vec<JoinHandle<()>>,
    /// Listening address of proxy `i` (what member `i` advertises).
    pub addrs: Vec<String>,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PeerProxies {
    /// Starts one proxy per target (`127.0.0.1:port` of each member's peer listener).
    pub async fn start(targets: &[String]) -> std::io::Result<PeerProxies> {
        let state = Arc::new(Mutex::new(State::default()));
        let (epoch, _) = watch::channel(0u64);
        let mut tasks = Vec::new();
        let mut addrs = Vec::new();
        for (i, target) in targets.iter().enumerate() {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            addrs.push(listener.local_addr()?.to_string());
            let state = Arc::clone(&state);
            let epoch_rx = epoch.subscribe();
            let target = target.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((conn, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = Arc::clone(&state);
                    let epoch_rx = epoch_rx.clone();
                    let target = target.clone();
                    tokio::spawn(async move {
                        let _ = forward(conn, i, &target, &state, epoch_rx).await;
                    });
                }
            }));
        }
        Ok(PeerProxies {
            state,
            epoch,
            tasks,
            addrs,
        })
    }

    /// Tells the proxies which member has which raft ID (for `X-Server-From`).
    pub fn set_member_ids(&self, ids: BTreeMap<u64, usize>) {
        lock(&self.state).ids = ids;
    }

    /// Cuts member `i` off from every other member.
    pub fn isolate(&self, i: usize) {
        lock(&self.state).isolated.insert(i);
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Removes every partition.
    pub fn heal(&self) {
        lock(&self.state).isolated.clear();
        self.epoch.send_modify(|e| *e += 1);
    }
}

impl Drop for PeerProxies {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The magic opening oxetcd's peer streams; the sender's ID follows it.
const OXRAFT_MAGIC: &[u8; 8] = b"OXRAFT01";

/// Whether `head` is the whole head the sender can be read from: an HTTP request head,
/// or an oxetcd stream handshake up to the sender's ID.
fn head_complete(head: &[u8]) -> bool {
    if head.starts_with(OXRAFT_MAGIC) {
        return head.len() >= OXRAFT_MAGIC.len() + 8;
    }
    head.windows(4).any(|w| w == b"\r\n\r\n")
}

/// The raft ID of the sender named by `head` (see [`head_complete`]).
fn sender_of(head: &[u8]) -> Option<u64> {
    if let Some(rest) = head.strip_prefix(OXRAFT_MAGIC.as_slice()) {
        let id: [u8; 8] = rest.get(..8)?.try_into().ok()?;
        return Some(u64::from_be_bytes(id));
    }
    let text = String::from_utf8_lossy(head);
    text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        if name.trim().eq_ignore_ascii_case("x-server-from") {
            u64::from_str_radix(value.trim(), 16).ok()
        } else {
            None
        }
    })
}

fn cut(state: &Mutex<State>, target: usize, sender: Option<usize>) -> bool {
    let s = lock(state);
    s.isolated.contains(&target) || sender.is_some_and(|x| s.isolated.contains(&x))
}

async fn forward(
    mut conn: TcpStream,
    target_idx: usize,
    target: &str,
    state: &Mutex<State>,
    mut epoch: watch::Receiver<u64>,
) -> std::io::Result<()> {
    if cut(state, target_idx, None) {
        return Ok(());
    }
    // Read the first request's head (bounded in size and time) to learn the sender.
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    while head.len() < 16 * 1024 && !head_complete(&head) {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(n)) => head.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => return Err(e),
            Err(_) => break,
        }
    }
    let sender = sender_of(&head).and_then(|id| lock(state).ids.get(&id).copied());
    if cut(state, target_idx, sender) {
        return Ok(());
    }
    let mut upstream = TcpStream::connect(target).await?;
    upstream.set_nodelay(true)?;
    conn.set_nodelay(true)?;
    upstream.write_all(&head).await?;
    let copy = tokio::io::copy_bidirectional(&mut conn, &mut upstream);
    tokio::pin!(copy);
    loop {
        tokio::select! {
            r = &mut copy => return r.map(|_| ()),
            changed = epoch.changed() => {
                if changed.is_err() || cut(state, target_idx, sender) {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_is_read_from_an_etcd_header_or_an_oxetcd_handshake() {
        let etcd = b"GET /raft/stream/message/2 HTTP/1.1\r\nHost: x\r\nX-Server-From: 8e9e05c52164694d\r\n\r\n";
        assert!(head_complete(etcd));
        assert_eq!(sender_of(etcd), Some(0x8e9e_05c5_2164_694d));

        let mut oxetcd = OXRAFT_MAGIC.to_vec();
        oxetcd.extend_from_slice(&0x1234_u64.to_be_bytes());
        assert!(
            head_complete(&oxetcd),
            "the sender's ID is all the proxy needs"
        );
        oxetcd.extend_from_slice(&0x5678_u64.to_be_bytes());
        assert_eq!(sender_of(&oxetcd), Some(0x1234));

        let partial = &oxetcd[..OXRAFT_MAGIC.len() + 4];
        assert!(!head_complete(partial));
        assert_eq!(sender_of(partial), None);
        assert!(!head_complete(b"GET / HTTP/1.1\r\n"));
        assert_eq!(sender_of(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), None);
    }
}
