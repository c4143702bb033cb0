//! Deterministic simulation tests of a whole Rhizome cluster.
//!
//! Will run a coordinator and several nodes as turmoil hosts over the real tonic services,
//! inject crashes, partitions and message loss, and check every acknowledged write against a
//! model of the table. Every run is reproducible from its seed (`SIM_SEED`).
