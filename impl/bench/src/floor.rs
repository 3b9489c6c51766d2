//! The machine's floor for one acknowledged write: one 4 KiB write + fdatasync on the
//! data dir's filesystem plus one loopback TCP round trip (medians of N samples).

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Block written per sample.
pub const BLOCK: usize = 4096;

/// Measured floor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Floor {
    /// Median of one 4 KiB write + fdatasync.
    pub write_fdatasync: Duration,
    /// Median of one loopback TCP round trip.
    pub loopback_rtt: Duration,
    /// Samples each.
    pub samples: usize,
}

impl Floor {
    /// The sum: the least one durable, acknowledged request can take here.
    pub fn total(&self) -> Duration {
        self.write_fdatasync + self.loopback_rtt
    }
}

/// Median of unsorted durations (upper median for even counts).
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// Measures the floor with `samples` samples each, writing under `dir`.
pub fn measure(dir: &Path, samples: usize) -> anyhow::Result<Floor> {
    let samples = samples.max(1);
    Ok(Floor {
        write_fdatasync: median(fdatasync_samples(dir, samples)?),
        loopback_rtt: median(rtt_samples(samples)?),
        samples,
    })
}

/// Overwrites consecutive 4 KiB blocks of a preallocated file (as a WAL segment is
/// preallocated), each followed by fdatasync.
fn fdatasync_samples(dir: &Path, n: usize) -> anyhow::Result<Vec<Duration>> {
    let file = tempfile::tempfile_in(dir)
        .with_context(|| format!("create a scratch file in {}", dir.display()))?;
    let block = vec![0x5a_u8; BLOCK];
    for i in 0..n {
        file.write_all_at(&block, (i * BLOCK) as u64)
            .context("preallocate")?;
    }
    file.sync_all().context("fsync the preallocated file")?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = Instant::now();
        file.write_all_at(&block, (i * BLOCK) as u64)
            .context("write 4 KiB")?;
        file.sync_data().context("fdatasync")?;
        out.push(t0.elapsed());
    }
    Ok(out)
}

/// Round trips of a 64-byte message to an echo thread over loopback TCP (no Nagle).
fn rtt_samples(n: usize) -> anyhow::Result<Vec<Duration>> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind the echo listener")?;
    let addr = listener.local_addr().context("echo address")?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0_u8; 64];
        loop {
            match s.read_exact(&mut buf) {
                Ok(()) => s.write_all(&buf)?,
                Err(_) => return Ok(()),
            }
        }
    });
    let mut client = TcpStream::connect(addr).context("connect to the echo thread")?;
    client.set_nodelay(true).context("nodelay")?;
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .context("read timeout")?;
    let msg = [7_u8; 64];
    let mut buf = [0_u8; 64];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        client.write_all(&msg).context("send")?;
        client.read_exact(&mut buf).context("receive the echo")?;
        out.push(t0.elapsed());
    }
    drop(client);
    let _ = echo.join();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_picks_the_middle_sample() {
        let ms = Duration::from_millis;
        assert_eq!(median(vec![ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(median(vec![ms(4), ms(1), ms(3), ms(2)]), ms(3));
        assert_eq!(median(Vec::new()), Duration::ZERO);
    }

    #[test]
    fn floor_measurement_yields_positive_parts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let floor = measure(dir.path(), 5).expect("measure");
        assert!(floor.write_fdatasync > Duration::ZERO);
        assert!(floor.loopback_rtt > Duration::ZERO);
        assert_eq!(floor.total(), floor.write_fdatasync + floor.loopback_rtt);
    }
}
