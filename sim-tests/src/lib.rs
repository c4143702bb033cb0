//! Deterministic simulation tests of a whole Rhizome cluster.
//!
//! Nodes run as [turmoil](https://docs.rs/turmoil) hosts over the real tonic services — the
//! node's `Transport` seam hands out channels over turmoil's TCP, and `app::serve` serves on
//! turmoil's accepted streams — while clients insert, delete and query, and a driver crashes
//! nodes, partitions, holds, slows and drops links. Every acknowledged write is recorded and
//! checked after the faults heal; every query answered during them is checked against the
//! writes a linearization point allows; Raft's invariants are watched at every step. A run is
//! a function of its seed: `SIM_SEED=n cargo test -p sim-tests` replays seed `n`.
//!
//! | module | what it holds |
//! |---|---|
//! | [`net`] | the simulated network under tonic: transport (client side) and incoming streams |
//! | [`harness`] | one run: hosts, workload clients, the fault driver, the final read, the checks |
//! | [`faults`] | the fault plan drawn from a seed |
//! | [`model`] | the history of client operations and the checks against it |
//! | [`observe`] | the Raft invariants watched between steps, and the trace |
//! | [`seeds`] | which seeds a test runs (CI budget, `SIM_SEED`, the long mode) |

pub mod faults;
pub mod harness;
pub mod model;
pub mod net;
pub mod observe;
pub mod seeds;
