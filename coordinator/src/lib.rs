//! Rhizome coordinator.
//!
//! Will hold the SQL-lite parser (sqlparser, PostgreSQL dialect) and its query type, the
//! scatter/gather executor that merges shard partials, the write router, the HTTP and
//! PostgreSQL-wire endpoints, and the Rhizome manager that places cache Rhizomes.
