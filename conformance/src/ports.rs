//! Ports for the servers that tests and tools start on 127.0.0.1.
//!
//! A port picked by binding port 0 comes from the kernel's ephemeral range, the same
//! range outgoing connections take their source ports from: between picking it and the
//! server binding it (a member restarted later on its old port, say), any client or
//! peer connection can take it, and the server then fails with "Address already in
//! use". So ports are picked below that range, each at most once per process (a
//! process-wide counter from an offset derived from the process id, so that processes
//! running side by side start far apart), and only if binding them succeeds now.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port handed out.
const LOWEST: u32 = 10_000;

/// The kernel's ephemeral port range (`ip_local_port_range`), Linux's default if it
/// cannot be read.
fn ephemeral_range() -> (u32, u32) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace().map(str::parse::<u32>);
            Some((parts.next()?.ok()?, parts.next()?.ok()?))
        })
        .unwrap_or((32_768, 60_999))
}

/// A free TCP port on 127.0.0.1 outside the ephemeral range (see the module docs); a
/// port from the ephemeral range only if none below it is free (or there is no room
/// below it).
///
/// # Errors
/// Binding port 0 failed.
pub fn free_port() -> std::io::Result<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (ephemeral_low, _) = ephemeral_range();
    if ephemeral_low > LOWEST + 1_000 {
        let span = ephemeral_low - LOWEST;
        let start = std::process::id().wrapping_mul(7_919) % span;
        for _ in 0..span.min(4_096) {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let port = LOWEST + (start.wrapping_add(n)) % span;
            let Ok(port) = u16::try_from(port) else {
                continue;
            };
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let (ephemeral_low, _) = ephemeral_range();
        let ports: Vec<u16> = (0..200).map(|_| free_port().unwrap()).collect();
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
        for port in ports {
            if ephemeral_low > LOWEST + 1_000 {
                assert!((LOWEST..ephemeral_low).contains(&u32::from(port)), "{port}");
            }
            TcpListener::bind(("127.0.0.1", port)).unwrap();
        }
    }
}
