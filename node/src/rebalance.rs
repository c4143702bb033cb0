//! Adding and removing nodes: `Admin.Join` and `Admin.Leave`, and the rebalancing both end
//! with. Both run on the meta group's leader (any node forwards the call there), one at a
//! time per leader ([`Node::rebalancing`]), in a task of their own so that a caller that
//! goes away does not cut a shard move in half.
//!
//! ## Join
//!
//! 1. The node must answer `Admin.Status` at its address as the id it asks to join with.
//! 2. `AddNode` records it in the meta group's node list (the desired state, first).
//! 3. It becomes a learner of the meta group, and a voter while the meta group has fewer
//!    than [`META_VOTERS_MAX`] voters.
//! 4. [`reconcile`]: every shard whose ring placement over the node list
//!    ([`Metadata::wanted_placement`]) differs from its recorded placement moves there.
//! 5. Stray replicas are closed: every group a listed node hosts that the shard map does not
//!    place on it (a replica moved off whose close did not reach it, in this rebalance or an
//!    earlier one). A node that cannot be reached makes the join fail (`Unavailable`) after
//!    everything else is done; joining again finishes it.
//!
//! ## Leave
//!
//! 1. `MarkLeaving` records that the node is going (it stays listed, so its address is
//!    known while its shards move, but nothing is placed on it any more, new tables
//!    included). Leaving an unknown node is `NotFound`; leaving the last node that is not
//!    leaving is `FailedPrecondition`.
//! 2. [`reconcile`] moves every shard off it.
//! 3. Every shard group it still hosts is closed and its files removed (with every other
//!    stray replica, see below); if it cannot be reached, the leave fails and is called again.
//! 4. `RemoveNode` takes it off the node list; last, it leaves the meta group's membership
//!    (a voter is replaced by a learner, or else by a listed node made a learner first, so
//!    the meta group keeps up to [`META_VOTERS_MAX`] voters). A leave that finished the node list but not the
//!    membership change is finished by leaving again.
//!
//! ## A move
//!
//! The `Admin.ChangeReplicas` path on the shard's leader (new replicas open the group and
//! join as learners, are caught up, then one joint membership change makes the wanted set
//! the voters), then `SetPlacement` records the new replica set in the shard map, then the
//! replicas that are no longer members close the group and remove its files. Each move is
//! logged with the shard, the old and new replica sets and its duration. Writes and reads of
//! the shard go on meanwhile (clients follow the leader when it moves).
//!
//! ## Crashes
//!
//! Every step is recorded before the next starts and every step is idempotent, so calling
//! `Join` or `Leave` again for the same node (after the meta leader crashed mid-way, or the
//! call timed out) finishes the job: the node list says what is wanted, the shard map says
//! which moves are done, and a move that was made but not recorded is made again (a no-op
//! for the group) and recorded. A move that was recorded but whose old replica was not told
//! to close (it was down or cut off) leaves that replica running until the stray-replica
//! sweep at the end of the join or leave reaches it; until then the call fails, so it is
//! called again (found by the simulation: before, the join succeeded and the replica stayed
//! for good, and a leaving node that was down kept every group after it was unlisted).
//! A node that is gone for good therefore cannot be removed yet (to come: a forced leave).
//!
//! The shard map is trusted as the current replica sets: a shard moved by hand with
//! `Admin.ChangeReplicas` (which does not record it) is not seen as moved, and its replicas
//! outside the shard map are closed by the next join's or leave's stray-replica sweep: do not
//! mix hand moves with joins and leaves.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::{BasicNode, ChangeMembers};
use proto::v1 as pb;
use proto::v1::admin_client::AdminClient;
use tokio::time::Instant;

use crate::app::Node;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::meta::{MetaCommand, MetaOutcome, Metadata, TableMeta, META_GROUP, META_VOTERS_MAX};
use crate::status::{error_from_status, from_write_error};
use crate::types::{NodeId, ShardKey};

/// Deadline of a whole join or leave: every shard move included.
pub const REBALANCE_TIMEOUT_MS: u64 = 600_000;
/// Deadline of one call to check that a joining node answers.
pub const PROBE_TIMEOUT_MS: u64 = 5_000;
/// Bound on one change of the meta group's membership, catch-up of a new learner included.
pub const META_CHANGE_TIMEOUT_MS: u64 = 30_000;
/// Client id of the rebalancer's shard client (it writes nothing; ids only label batches).
const REBALANCE_CLIENT_ID: u64 = u64::MAX - 1;

/// Where the meta group's leader is: `None` when it is this node, else its address.
pub async fn meta_leader(node: &Node) -> Result<Option<String>> {
    node.meta_leader_call(|leader| async move {
        match leader {
            None => node.metadata_here().await.map(|_| None),
            Some(addr) => Ok(Some(addr)),
        }
    })
    .await
}

/// Join a node (on the meta leader): record it, add it to the meta group, rebalance.
pub async fn join(node: &Node, id: NodeId, addr: String) -> Result<()> {
    if id == 0 || addr.is_empty() {
        return Err(Error::InvalidArgument(
            "a joining node needs a non-zero id and an address".into(),
        ));
    }
    let _one_at_a_time = node.rebalancing.lock().await;
    let (metadata, _) = node.metadata_here().await?;
    if metadata.nodes.is_empty() {
        return Err(Error::Unavailable {
            shard: META_GROUP.into(),
            reason: "the cluster is not initialised (Admin.Initialize)".into(),
        });
    }
    match metadata.nodes.get(&id) {
        Some(known) if *known != addr => {
            return Err(Error::AlreadyExists(format!(
                "node id {id} is taken by {known} (asked for {addr})"
            )))
        }
        _ => {}
    }
    if metadata.leaving.contains(&id) {
        return Err(Error::FailedPrecondition(format!(
            "node {id} is leaving the cluster; let the leave finish first"
        )));
    }
    probe(node, id, &addr).await?;
    match node
        .meta_propose(MetaCommand::AddNode {
            id,
            addr: addr.clone(),
        })
        .await?
    {
        MetaOutcome::Done => {}
        MetaOutcome::NodeConflict(message) if metadata.leaving.contains(&id) => {
            return Err(Error::FailedPrecondition(message))
        }
        MetaOutcome::NodeConflict(message) => return Err(Error::AlreadyExists(message)),
        other => return Err(Error::Raft(format!("add node applied as {other:?}"))),
    }
    add_to_meta_group(node, id, &addr).await?;
    tracing::info!(node = id, %addr, "node listed and in the meta group; rebalancing");
    let moved = reconcile(node).await?;
    close_stray_groups(node).await?;
    tracing::info!(node = id, moved, "node joined");
    Ok(())
}

/// Take a node out (on the meta leader): move its shards off, close its groups, unlist it,
/// take it out of the meta group.
pub async fn leave(node: &Node, id: NodeId) -> Result<()> {
    let _one_at_a_time = node.rebalancing.lock().await;
    let (metadata, _) = node.metadata_here().await?;
    if !metadata.nodes.contains_key(&id) {
        // A leave that got as far as unlisting the node finishes its last step.
        if meta_member_ids(node).contains(&id) {
            remove_from_meta_group(node, id, &metadata).await?;
            tracing::info!(node = id, "node left (meta group membership finished)");
            return Ok(());
        }
        return Err(Error::NotFound(format!("node {id} is not in the cluster")));
    }
    if metadata.nodes.len() == 1 {
        return Err(Error::FailedPrecondition(format!(
            "node {id} is the cluster's last node: the cluster would have no meta voter and \
             its shards nowhere to go"
        )));
    }
    match node.meta_propose(MetaCommand::MarkLeaving(id)).await? {
        MetaOutcome::Done => {}
        MetaOutcome::NotFound(message) => return Err(Error::NotFound(message)),
        MetaOutcome::NodeConflict(message) => return Err(Error::FailedPrecondition(message)),
        other => return Err(Error::Raft(format!("mark leaving applied as {other:?}"))),
    }
    tracing::info!(node = id, "node marked leaving; moving its shards off");
    let moved = reconcile(node).await?;
    // The leaving node is still listed: every group it hosts is closed here (none is placed
    // on it any more), and it is unlisted only once that is done.
    close_stray_groups(node).await?;
    match node.meta_propose(MetaCommand::RemoveNode(id)).await? {
        MetaOutcome::Done => {}
        other => return Err(Error::Raft(format!("remove node applied as {other:?}"))),
    }
    let (metadata, _) = node.metadata().await?;
    remove_from_meta_group(node, id, &metadata).await?;
    tracing::info!(node = id, moved, "node left");
    Ok(())
}

/// Move every shard whose ring placement over the placeable nodes differs from its recorded
/// placement, one at a time, recording each move. Returns the number of shards moved.
pub async fn reconcile(node: &Node) -> Result<usize> {
    let (metadata, _) = node.metadata().await?;
    let client = Client::new(
        REBALANCE_CLIENT_ID,
        metadata.nodes.clone(),
        node.config.transport.clone(),
    );
    let mut moved = 0;
    for table in metadata.tables.values() {
        for shard in 0..table.shards {
            let current = table
                .placement
                .get(shard as usize)
                .cloned()
                .unwrap_or_default();
            let wanted = metadata.wanted_placement(table, shard);
            if wanted.is_empty() || same_set(&current, &wanted) {
                continue;
            }
            if move_shard(node, &client, &metadata, table, shard, &current, &wanted).await? {
                moved += 1;
            }
        }
    }
    Ok(moved)
}

fn same_set(a: &[NodeId], b: &[NodeId]) -> bool {
    a.iter().collect::<BTreeSet<_>>() == b.iter().collect::<BTreeSet<_>>()
}

/// One move; `false` when the table was dropped meanwhile.
async fn move_shard(
    node: &Node,
    client: &Client,
    metadata: &Metadata,
    table: &TableMeta,
    shard: u32,
    current: &[NodeId],
    wanted: &[NodeId],
) -> Result<bool> {
    let key = table.shard_key(shard);
    let started = Instant::now();
    let members: BTreeMap<NodeId, String> = wanted
        .iter()
        .map(|id| {
            let addr = metadata
                .nodes
                .get(id)
                .ok_or_else(|| Error::Raft(format!("node {id} is placed on but not listed")))?;
            Ok((*id, addr.clone()))
        })
        .collect::<Result<_>>()?;
    tracing::info!(shard = %key, from = ?current, to = ?wanted, "moving shard");
    if let Err(error) = client.change_replicas(&key, &members).await {
        if matches!(error, Error::NotFound(_)) && !table_exists(node, &table.name).await? {
            tracing::info!(shard = %key, "table dropped during the move");
            return Ok(false);
        }
        return Err(error);
    }
    match node
        .meta_propose(MetaCommand::SetPlacement {
            table: table.name.clone(),
            shard,
            members: wanted.to_vec(),
        })
        .await?
    {
        MetaOutcome::Done => {}
        MetaOutcome::NotFound(what) => {
            tracing::info!(shard = %key, %what, "table dropped during the move");
            return Ok(false);
        }
        other => return Err(Error::Raft(format!("set placement applied as {other:?}"))),
    }
    for old in current.iter().filter(|id| !wanted.contains(id)) {
        if let Some(addr) = metadata.nodes.get(old) {
            if let Err(error) = close_group_at(node, *old, addr, &key).await {
                tracing::warn!(shard = %key, node = old, %error, "a replica moved off could not close the group; its files stay");
            }
        }
    }
    tracing::info!(
        shard = %key,
        from = ?current,
        to = ?wanted,
        duration_ms = started.elapsed().as_millis() as u64,
        "shard moved"
    );
    Ok(true)
}

async fn table_exists(node: &Node, name: &str) -> Result<bool> {
    Ok(node.metadata().await?.0.tables.contains_key(name))
}

/// Close a shard group on a node and remove its files.
async fn close_group_at(node: &Node, id: NodeId, addr: &str, key: &ShardKey) -> Result<()> {
    if id == node.id() {
        return node.drop_group(key).await;
    }
    let channel = node.config.transport.channel(addr)?;
    AdminClient::new(channel)
        .drop_shard(pb::DropShardRequest {
            shard: Some(pb::ShardRef {
                table: key.table.clone(),
                shard: key.shard,
            }),
        })
        .await
        .map_err(|s| error_from_status(addr, &s))?;
    Ok(())
}

/// Close every shard group a listed node hosts that the shard map does not place on it: the
/// replicas moved off by this rebalance or an earlier one whose close did not reach them (the
/// node was down or cut off then), and every group of a leaving node. A node that cannot be
/// asked makes it fail with `Unavailable` once the others are done, so that the join or leave
/// is called again (it is idempotent) rather than leaving stray replicas behind for good.
/// Groups of tables created or dropped since the metadata was read are left alone.
async fn close_stray_groups(node: &Node) -> Result<usize> {
    let (metadata, _) = node.metadata().await?;
    let mut unreachable = BTreeSet::new();
    let mut closed = 0;
    for (&id, addr) in &metadata.nodes {
        let status = match status_of(node, id, addr).await {
            Ok(status) => status,
            Err(error) => {
                tracing::warn!(node = id, %error, "a node did not answer; its stray shard groups stay for now");
                unreachable.insert(id);
                continue;
            }
        };
        for group in status.groups {
            let Some(key) = ShardKey::parse_group_name(&group.group) else {
                continue;
            };
            let Some(table) = metadata.tables.get(&key.table) else {
                continue;
            };
            let placed = table
                .placement
                .get(key.shard as usize)
                .is_some_and(|p| p.contains(&id));
            if key.shard >= table.shards || placed {
                continue;
            }
            match close_group_at(node, id, addr, &key).await {
                Ok(()) => {
                    tracing::info!(shard = %key, node = id, "closed a replica the shard map does not place there");
                    closed += 1;
                }
                Err(error) => {
                    tracing::warn!(shard = %key, node = id, %error, "a stray replica could not be closed; its files stay for now");
                    unreachable.insert(id);
                }
            }
        }
    }
    if !unreachable.is_empty() {
        return Err(Error::Unavailable {
            shard: META_GROUP.into(),
            reason: format!(
                "nodes {unreachable:?} could not be asked to close the shard groups not placed \
                 on them; call again to finish"
            ),
        });
    }
    Ok(closed)
}

async fn status_of(node: &Node, id: NodeId, addr: &str) -> Result<pb::StatusReply> {
    if id == node.id() {
        let meta = node.meta();
        let mut groups = vec![crate::services::raft_status(
            META_GROUP, &meta.raft, &meta.log,
        )];
        groups.extend(
            node.groups()
                .iter()
                .map(|g| crate::services::group_status(g)),
        );
        return Ok(pb::StatusReply {
            node_id: id,
            groups,
        });
    }
    let channel = node.config.transport.channel(addr)?;
    let mut request = tonic::Request::new(pb::StatusRequest {});
    request.set_timeout(Duration::from_millis(PROBE_TIMEOUT_MS));
    Ok(AdminClient::new(channel)
        .status(request)
        .await
        .map_err(|s| error_from_status(addr, &s))?
        .into_inner())
}

/// A joining node must answer at its address, as itself.
async fn probe(node: &Node, id: NodeId, addr: &str) -> Result<()> {
    let status = status_of(node, id, addr)
        .await
        .map_err(|e| Error::Unavailable {
            shard: format!("node {id}"),
            reason: format!("the joining node does not answer at {addr}: {e}"),
        })?;
    if status.node_id != id {
        return Err(Error::InvalidArgument(format!(
            "the node at {addr} is node {}, not {id}",
            status.node_id
        )));
    }
    Ok(())
}

/// Every node of the meta group's membership (voters and learners) as this node sees it.
fn meta_member_ids(node: &Node) -> BTreeSet<NodeId> {
    node.meta()
        .raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .nodes()
        .map(|(id, _)| *id)
        .collect()
}

fn meta_voter_ids(node: &Node) -> BTreeSet<NodeId> {
    node.meta()
        .raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect()
}

/// One change of the meta group's membership (a learner's catch-up included), bounded: a
/// change whose leader loses its leadership midway (a node back from a partition with a
/// higher term) may never be answered, and the Join or Leave must then fail `Unavailable`
/// so that a retry finishes it.
async fn meta_change<T>(
    what: &str,
    change: impl std::future::Future<
        Output = std::result::Result<
            T,
            openraft::error::RaftError<
                NodeId,
                openraft::error::ClientWriteError<NodeId, BasicNode>,
            >,
        >,
    >,
) -> Result<()> {
    match tokio::time::timeout(Duration::from_millis(META_CHANGE_TIMEOUT_MS), change).await {
        Ok(result) => result
            .map(|_| ())
            .map_err(|e| from_write_error(META_GROUP, e)),
        Err(_) => Err(Error::Unavailable {
            shard: META_GROUP.to_string(),
            reason: format!("{what}: no answer within {META_CHANGE_TIMEOUT_MS} ms; retry"),
        }),
    }
}

/// Make a node a learner of the meta group (caught up), and a voter while there are fewer
/// than [`META_VOTERS_MAX`].
async fn add_to_meta_group(node: &Node, id: NodeId, addr: &str) -> Result<()> {
    let raft = &node.meta().raft;
    if !meta_member_ids(node).contains(&id) {
        meta_change(
            "adding a meta learner",
            raft.add_learner(
                id,
                BasicNode {
                    addr: addr.to_string(),
                },
                true,
            ),
        )
        .await?;
    }
    let voters = meta_voter_ids(node);
    if !voters.contains(&id) && voters.len() < META_VOTERS_MAX {
        meta_change(
            "adding a meta voter",
            raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true),
        )
        .await?;
        tracing::info!(node = id, "node is a voter of the meta group");
    }
    Ok(())
}

/// Take a node out of the meta group's membership. A voter is replaced by learners (not
/// leaving) up to [`META_VOTERS_MAX`] voters; if none is a learner, a listed node is made one.
async fn remove_from_meta_group(node: &Node, id: NodeId, metadata: &Metadata) -> Result<()> {
    let raft = &node.meta().raft;
    let members = meta_member_ids(node);
    if !members.contains(&id) {
        return Ok(());
    }
    let voters = meta_voter_ids(node);
    if !voters.contains(&id) {
        meta_change(
            "removing a meta learner",
            raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false),
        )
        .await?;
        return Ok(());
    }
    let stays = |n: &NodeId| *n != id && !metadata.leaving.contains(n);
    let mut new_voters: BTreeSet<NodeId> = voters.iter().copied().filter(stays).collect();
    // Replacements: learners first, then listed nodes that are not members yet.
    let learners = members.iter().filter(|n| stays(n) && !voters.contains(n));
    let others = metadata
        .nodes
        .keys()
        .filter(|n| stays(n) && !members.contains(n));
    for &candidate in learners.chain(others) {
        if new_voters.len() >= META_VOTERS_MAX {
            break;
        }
        if !members.contains(&candidate) {
            let Some(addr) = metadata.nodes.get(&candidate) else {
                continue;
            };
            meta_change(
                "adding a meta learner",
                raft.add_learner(candidate, BasicNode { addr: addr.clone() }, true),
            )
            .await?;
        }
        new_voters.insert(candidate);
    }
    if new_voters.is_empty() {
        return Err(Error::FailedPrecondition(format!(
            "node {id} is the meta group's last voter and no other node is listed"
        )));
    }
    meta_change(
        "replacing the meta voters",
        raft.change_membership(ChangeMembers::ReplaceAllVoters(new_voters.clone()), false),
    )
    .await?;
    tracing::info!(node = id, voters = ?new_voters, "node is out of the meta group");
    Ok(())
}
