use super::*;
use oxetcd_spec::raft::MemStorage;

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        payload: EntryPayload::Normal(vec![u8::try_from(index % 256).unwrap(); 3]),
    }
}

fn open(dir: &std::path::Path) -> FjallRaftStorage {
    FjallRaftStorage::open(DataDir::open(dir).unwrap(), ConfState::with_voters([1])).unwrap()
}

/// The same operations on fjall and on spec's MemStorage give the same answers.
fn assert_same(fjall: &FjallRaftStorage, mem: &MemStorage) {
    assert_eq!(fjall.first_index(), mem.first_index());
    assert_eq!(fjall.last_index(), mem.last_index());
    assert_eq!(fjall.initial_state(), mem.initial_state());
    let (first, last) = (mem.first_index().0, mem.last_index().0);
    for lo in first.saturating_sub(1)..=last + 1 {
        for hi in lo..=last + 2 {
            assert_eq!(
                fjall.entries(LogIndex(lo), LogIndex(hi), None),
                mem.entries(LogIndex(lo), LogIndex(hi), None),
                "entries({lo}, {hi})"
            );
        }
        assert_eq!(
            fjall.term(LogIndex(lo)),
            mem.term(LogIndex(lo)),
            "term({lo})"
        );
    }
    assert_eq!(
        fjall.entries(LogIndex(first), LogIndex(last + 1), Some(1)),
        mem.entries(LogIndex(first), LogIndex(last + 1), Some(1))
    );
}

/// One operation applied to both storages.
type Step = Box<dyn Fn(&mut dyn Storage) -> Result<(), RaftStorageError>>;

#[test]
fn behaves_like_mem_storage_through_appends_truncation_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut fjall = open(dir.path());
    let mut mem = MemStorage::new_with_conf_state(ConfState::with_voters([1]));
    let steps: Vec<Step> = vec![
        Box::new(|s| s.append(&[entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 2)])),
        Box::new(|s| s.append(&[entry(3, 3)])),
        Box::new(|s| s.append(&[entry(6, 3)])),
        Box::new(|s| s.append(&[entry(4, 3), entry(5, 3), entry(6, 4)])),
        Box::new(|s| {
            s.set_hard_state(HardState {
                term: Term(4),
                vote: None,
                commit: LogIndex(5),
            })
        }),
        Box::new(|s| s.compact(LogIndex(3))),
        Box::new(|s| s.create_snapshot(LogIndex(4), ConfState::with_voters([1]), b"app".to_vec())),
        Box::new(|s| s.compact(LogIndex(3))),
        Box::new(|s| s.compact(LogIndex(3))),
        Box::new(|s| s.append(&[entry(2, 1)])),
        Box::new(|s| s.append(&[entry(7, 4)])),
    ];
    for (number, step) in steps.iter().enumerate() {
        let fjall_result = step(&mut fjall);
        let mem_result = step(&mut mem);
        assert_eq!(fjall_result, mem_result, "step {number}");
        assert_same(&fjall, &mem);
    }
    assert_eq!(fjall.snapshot().unwrap(), mem.snapshot().unwrap());
}

#[test]
fn reopening_restores_log_hard_state_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut storage = open(dir.path());
        storage
            .append(&[entry(1, 1), entry(2, 1), entry(3, 2)])
            .unwrap();
        storage
            .set_hard_state(HardState {
                term: Term(2),
                vote: None,
                commit: LogIndex(2),
            })
            .unwrap();
        storage
            .create_snapshot(LogIndex(2), ConfState::with_voters([1]), Vec::new())
            .unwrap();
        storage.compact(LogIndex(2)).unwrap();
        storage.data_dir().sync().unwrap();
    }
    let storage = open(dir.path());
    assert_eq!(storage.first_index(), LogIndex(3));
    assert_eq!(storage.last_index(), LogIndex(3));
    assert_eq!(storage.term(LogIndex(2)), Ok(Term(1)));
    assert_eq!(
        storage.entries(LogIndex(3), LogIndex(4), None),
        Ok(vec![entry(3, 2)])
    );
    assert_eq!(storage.hard_state().commit, LogIndex(2));
}

#[test]
fn new_log_starts_with_the_initial_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FjallRaftStorage::open(
        DataDir::open(dir.path()).unwrap(),
        ConfState::with_voters([42]),
    )
    .unwrap();
    assert_eq!(
        storage.initial_state().unwrap().1,
        ConfState::with_voters([42])
    );
    assert_eq!(storage.last_index(), LogIndex(0));
}

#[test]
fn an_installed_snapshot_is_committed_in_the_same_write() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut storage = open(dir.path());
        storage.append(&[entry(1, 1), entry(2, 1)]).unwrap();
        storage
            .apply_snapshot(Snapshot {
                metadata: SnapshotMetadata {
                    index: LogIndex(10),
                    term: Term(3),
                    conf_state: ConfState::with_voters([1, 2]),
                },
                data: b"000000000000000a.snap".to_vec(),
            })
            .unwrap();
        // No hard state written after it: the process dies here.
        storage.data_dir().sync().unwrap();
    }
    let storage = open(dir.path());
    assert_eq!(storage.hard_state().commit, LogIndex(10));
    assert_eq!(storage.first_index(), LogIndex(11));
    assert_eq!(storage.last_index(), LogIndex(10));
    assert_eq!(storage.snapshot_data(), b"000000000000000a.snap");
}

#[test]
fn corrupt_log_entry_is_reported_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut storage = open(dir.path());
        storage.append(&[entry(1, 1), entry(2, 1)]).unwrap();
        storage
            .data_dir()
            .log
            .insert(index_key(LogIndex(2)), b"garbage".to_vec())
            .unwrap();
        storage.data_dir().sync().unwrap();
    }
    let error = FjallRaftStorage::open(
        DataDir::open(dir.path()).unwrap(),
        ConfState::with_voters([1]),
    )
    .unwrap_err();
    assert!(matches!(error, StorageError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("corrupt"), "{error}");
}

#[test]
fn log_with_a_gap_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut storage = open(dir.path());
        storage
            .append(&[entry(1, 1), entry(2, 1), entry(3, 1)])
            .unwrap();
        storage
            .data_dir()
            .log
            .remove(index_key(LogIndex(2)))
            .unwrap();
        storage.data_dir().sync().unwrap();
    }
    let error = FjallRaftStorage::open(
        DataDir::open(dir.path()).unwrap(),
        ConfState::with_voters([1]),
    )
    .unwrap_err();
    assert!(error.to_string().contains("gap"), "{error}");
}
