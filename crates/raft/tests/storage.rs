//! The log store and state machine against openraft's storage conformance
//! suite, plus crash safety: what `append`/`save_vote` acknowledged
//! survives a reopen, and a torn tail is cut without touching earlier
//! entries.

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, LogId, RaftLogReader, StorageError, Vote};

use odradek_metadata::MetadataRecord;
use odradek_raft::{Entry, LogStore, MetadataCommand, StateMachine, TypeConfig};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        let sm = StateMachine::open(dir.path()).unwrap();
        Ok((dir, log, sm))
    }
}

type S = Suite<TypeConfig, LogStore, StateMachine, Builder, tempfile::TempDir>;

macro_rules! suite {
    ($($name:ident),* $(,)?) => {{
        let mut failed = Vec::new();
        $(
            let (_dir, log, sm) = Builder.build().await.unwrap();
            if let Err(e) = S::$name(log, sm).await {
                failed.push(format!("{}: {e}", stringify!($name)));
            }
        )*
        failed
    }};
}

/// openraft's storage conformance suite (`openraft::testing::Suite`).
#[tokio::test]
async fn openraft_storage_suite() {
    let failed = suite!(
        last_membership_in_log_initial,
        last_membership_in_log,
        last_membership_in_log_multi_step,
        get_membership_initial,
        get_membership_from_log_and_empty_sm,
        get_membership_from_empty_log_and_sm,
        get_membership_from_log_le_sm_last_applied,
        get_membership_from_log_gt_sm_last_applied_1,
        get_membership_from_log_gt_sm_last_applied_2,
        get_initial_state_without_init,
        get_initial_state_with_state,
        get_initial_state_last_log_gt_sm,
        get_initial_state_last_log_lt_sm,
        get_initial_state_log_ids,
        get_initial_state_re_apply_committed,
        save_vote,
        get_log_entries,
        limited_get_log_entries,
        try_get_log_entry,
        initial_logs,
        get_log_state,
        get_log_id,
        last_id_in_log,
        last_applied_state,
        purge_logs_upto_0,
        purge_logs_upto_5,
        purge_logs_upto_20,
        delete_logs_since_11,
        delete_logs_since_0,
        append_to_log,
        snapshot_meta,
        apply_single,
        apply_multiple,
    );
    assert!(failed.is_empty(), "{failed:#?}");
    S::transfer_snapshot(&Builder).await.unwrap();
}

fn entry(term: u64, index: u64, pid: i64) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload: EntryPayload::Normal(MetadataCommand::new(vec![MetadataRecord::ProducerIds {
            next_producer_id: pid,
        }])),
    }
}

async fn read_all(store: &mut LogStore) -> Vec<Entry> {
    store.try_get_log_entries(..).await.unwrap()
}

#[tokio::test]
async fn acknowledged_entries_and_vote_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let written: Vec<Entry> = (0..5).map(|i| entry(1, i, i as i64)).collect();
    {
        let mut store = LogStore::open(dir.path()).unwrap();
        store.blocking_append(written[..3].to_vec()).await.unwrap();
        store.blocking_append(written[3..].to_vec()).await.unwrap();
        store.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
    }
    let mut store = LogStore::open(dir.path()).unwrap();
    assert_eq!(read_all(&mut store).await, written);
    assert_eq!(
        store.read_vote().await.unwrap(),
        Some(Vote::new_committed(1, 1))
    );

    // Truncate (Raft §5.3: a follower drops a conflicting suffix) and
    // purge (after a snapshot) are durable too.
    store.truncate(written[3].log_id).await.unwrap();
    store.purge(written[0].log_id).await.unwrap();
    store.blocking_append([entry(2, 3, 30)]).await.unwrap();
    drop(store);
    let mut store = LogStore::open(dir.path()).unwrap();
    let expected = vec![written[1].clone(), written[2].clone(), entry(2, 3, 30)];
    assert_eq!(read_all(&mut store).await, expected);
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(written[0].log_id));
    assert_eq!(state.last_log_id, Some(entry(2, 3, 30).log_id));
}

/// A crash during an append leaves a torn frame at the end of the file;
/// every cut inside the last frame must recover exactly the earlier
/// entries, and appending must continue at the right index.
#[tokio::test]
async fn torn_tail_at_every_byte_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(odradek_raft::log_store::LOG_FILE);
    {
        let mut store = LogStore::open(dir.path()).unwrap();
        store.blocking_append([entry(1, 0, 0)]).await.unwrap();
    }
    let first_len = std::fs::metadata(&path).unwrap().len() as usize;
    {
        let mut store = LogStore::open(dir.path()).unwrap();
        store.blocking_append([entry(1, 1, 1)]).await.unwrap();
    }
    let full = std::fs::read(&path).unwrap();
    for cut in first_len..full.len() {
        std::fs::write(&path, &full[..cut]).unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(
            read_all(&mut store).await,
            vec![entry(1, 0, 0)],
            "cut {cut}"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, first_len);
        store.blocking_append([entry(1, 1, 1)]).await.unwrap();
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(read_all(&mut store).await.len(), 2, "cut {cut}");
    }
}

#[tokio::test]
async fn a_corrupt_vote_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::open(dir.path()).unwrap();
        store.save_vote(&Vote::new(3, 2)).await.unwrap();
    }
    let path = dir.path().join("vote");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    // Forgetting a vote could let this voter vote twice in one term.
    assert!(LogStore::open(dir.path()).is_err());
}
