//! One conformance suite for `spec::mvcc::Backend`, run against spec's `MemBackend` and
//! the fjall backend: both must give the same answers for the trait's correctness rules
//! (batch order, scan order, bucket isolation).

use oxetcd_spec::mvcc::{Backend, Bucket, MemBackend, WriteBatch};

use super::DataDir;
use super::backend::FjallBackend;

/// `(bucket, key, Some(value))` puts, `(bucket, key, None)` deletes.
type Op<'a> = (Bucket, &'a [u8], Option<&'a [u8]>);

fn batch(ops: &[Op<'_>]) -> WriteBatch {
    let mut batch = WriteBatch::default();
    for (bucket, key, value) in ops {
        match value {
            Some(value) => batch.put(*bucket, key.to_vec(), value.to_vec()),
            None => batch.delete(*bucket, key.to_vec()),
        }
    }
    batch
}

/// Runs every check of the suite on a fresh backend.
fn suite(backend: &mut impl Backend) {
    assert_eq!(
        backend.get(Bucket::Key, b"a").unwrap(),
        None,
        "empty backend"
    );
    assert!(backend.scan(Bucket::Key, b"").unwrap().is_empty());

    backend
        .write(batch(&[
            (Bucket::Key, b"b", Some(b"2")),
            (Bucket::Key, b"a", Some(b"1")),
        ]))
        .unwrap();
    assert_eq!(backend.get(Bucket::Key, b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(
        backend.scan(Bucket::Key, b"").unwrap(),
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec())
        ],
        "scan is in key order"
    );

    // Later ops on the same key win, in batch order.
    backend
        .write(batch(&[
            (Bucket::Key, b"a", Some(b"x")),
            (Bucket::Key, b"a", None),
            (Bucket::Key, b"c", None),
            (Bucket::Key, b"c", Some(b"3")),
        ]))
        .unwrap();
    assert_eq!(backend.get(Bucket::Key, b"a").unwrap(), None);
    assert_eq!(backend.get(Bucket::Key, b"c").unwrap(), Some(b"3".to_vec()));

    // Scan from a key: inclusive lower bound, byte order (not string order).
    backend
        .write(batch(&[
            (Bucket::Key, &[0xff], Some(b"hi")),
            (Bucket::Key, &[0x00], Some(b"lo")),
        ]))
        .unwrap();
    let from_b: Vec<Vec<u8>> = backend
        .scan(Bucket::Key, b"b")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(from_b, vec![b"b".to_vec(), b"c".to_vec(), vec![0xff]]);

    // Buckets are isolated.
    backend
        .write(batch(&[(Bucket::Meta, b"b", Some(b"meta"))]))
        .unwrap();
    assert_eq!(backend.get(Bucket::Key, b"b").unwrap(), Some(b"2".to_vec()));
    assert_eq!(
        backend.get(Bucket::Meta, b"b").unwrap(),
        Some(b"meta".to_vec())
    );
    assert_eq!(backend.scan(Bucket::Lease, b"").unwrap(), Vec::new());
    for bucket in Bucket::ALL {
        backend
            .write(batch(&[(bucket, b"same", Some(bucket.name()))]))
            .unwrap();
    }
    for bucket in Bucket::ALL {
        assert_eq!(
            backend.get(bucket, b"same").unwrap(),
            Some(bucket.name().to_vec())
        );
    }

    // An empty batch changes nothing.
    let before = backend.scan(Bucket::Key, b"").unwrap();
    backend.write(WriteBatch::default()).unwrap();
    assert_eq!(backend.scan(Bucket::Key, b"").unwrap(), before);
}

#[test]
fn mem_backend_passes_the_suite() {
    suite(&mut MemBackend::new());
}

#[test]
fn fjall_backend_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    suite(&mut FjallBackend::open(DataDir::open(dir.path()).unwrap()).unwrap());
}

#[test]
fn fjall_backend_keeps_synced_batches_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let expected = {
        let mut backend = FjallBackend::open(DataDir::open(dir.path()).unwrap()).unwrap();
        suite(&mut backend);
        backend.data_dir().sync().unwrap();
        Bucket::ALL.map(|bucket| backend.scan(bucket, b"").unwrap())
    };
    let backend = FjallBackend::open(DataDir::open(dir.path()).unwrap()).unwrap();
    assert_eq!(
        Bucket::ALL.map(|bucket| backend.scan(bucket, b"").unwrap()),
        expected
    );
}

#[test]
fn fjall_backend_passes_the_suite_while_deferring() {
    let dir = tempfile::tempdir().unwrap();
    let mut backend = FjallBackend::open(DataDir::open(dir.path()).unwrap()).unwrap();
    backend.defer();
    suite(&mut backend);
    backend.flush().unwrap();
}

#[test]
fn deferred_writes_reach_fjall_at_flush_or_at_the_first_read_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut backend = FjallBackend::open(DataDir::open(dir.path()).unwrap()).unwrap();
    let handle = backend.clone();
    let put = |key: &[u8], value: &[u8]| {
        let mut batch = WriteBatch::default();
        batch.put(Bucket::Key, key.to_vec(), value.to_vec());
        batch
    };
    let in_fjall = |key: &[u8]| {
        use fjall::Readable as _;
        let data = handle.data_dir();
        let keyspace = data
            .db
            .keyspace("bucket_key", crate::storage::keyspace_options)
            .unwrap();
        data.db
            .snapshot()
            .get(&keyspace, key)
            .unwrap()
            .map(|v| v.to_vec())
    };
    backend.defer();
    backend.write(put(b"a", b"1")).unwrap();
    backend.write(put(b"a", b"2")).unwrap();
    assert_eq!(in_fjall(b"a"), None, "held back while deferring");
    // A view (snapshot save, log compaction) writes what was held back first.
    let view = handle.view();
    assert_eq!(view.get(Bucket::Key, b"a").unwrap(), Some(b"2".to_vec()));
    assert_eq!(in_fjall(b"a"), Some(b"2".to_vec()));
    backend.write(put(b"b", b"3")).unwrap();
    assert_eq!(in_fjall(b"b"), None, "still deferring after a read");
    handle.flush().unwrap();
    assert_eq!(in_fjall(b"b"), Some(b"3".to_vec()));
    backend.write(put(b"c", b"4")).unwrap();
    assert_eq!(
        in_fjall(b"c"),
        Some(b"4".to_vec()),
        "written at once after flush"
    );
}
