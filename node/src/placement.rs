//! Shard placement: which nodes hold the replicas of a shard, from a consistent hash ring with
//! virtual nodes. Adding or removing a node changes the replica sets of only the shards whose
//! ring owners change.

use consistent_hash_ring::RingBuilder;

use crate::types::{NodeId, ShardKey};

/// Virtual nodes per node on the ring: enough for an even spread over a few dozen nodes.
pub const VIRTUAL_NODES_PER_NODE: usize = 64;
/// Replicas per shard unless a table says otherwise.
pub const REPLICAS_DEFAULT: usize = 3;

/// The replicas of `shard` among `nodes`: `replicas` of them (fewer when there are fewer
/// nodes), in ring order, the first being the preferred initial leader.
pub fn replicas(shard: &ShardKey, nodes: &[NodeId], replicas: usize) -> Vec<NodeId> {
    if nodes.is_empty() {
        return Vec::new();
    }
    let ring = RingBuilder::default()
        .vnodes(VIRTUAL_NODES_PER_NODE)
        .nodes_iter(nodes.iter().copied())
        .build();
    ring.replicas(shard.group_name())
        .take(replicas.min(nodes.len()))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_a_node_moves_only_some_shards_and_each_set_is_distinct() {
        // Proves: replica sets have distinct nodes, are capped by the node count, and adding
        // a fourth node to three changes the replica sets of only part of 64 shards, with
        // each changed set gaining the new node.
        let shards: Vec<ShardKey> = (0..64).map(|s| ShardKey::new("t", s)).collect();
        let before: Vec<Vec<NodeId>> = shards.iter().map(|s| replicas(s, &[1, 2, 3], 2)).collect();
        let after: Vec<Vec<NodeId>> = shards
            .iter()
            .map(|s| replicas(s, &[1, 2, 3, 4], 2))
            .collect();
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(b.len(), 2);
            assert_ne!(b[0], b[1]);
            let mut bs = b.clone();
            let mut as_ = a.clone();
            bs.sort();
            as_.sort();
            if bs != as_ {
                moved += 1;
                assert!(
                    a.contains(&4),
                    "a changed set gains the new node: {b:?} -> {a:?}"
                );
            }
        }
        assert!(moved > 0 && moved < 64, "moved {moved} of 64");
        assert_eq!(replicas(&shards[0], &[7], 3), vec![7]);
        assert!(replicas(&shards[0], &[], 3).is_empty());
    }
}
