//! Status: the pure step from a [`Verdict`] to the conditions an `Endpoint` should carry, and
//! the writer that applies them (server-side apply, one field manager, only what changed,
//! only while this replica holds the lease).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::resource::{Endpoint, EndpointStatus};
use crate::status as cond;

use crate::index::{ObjectKey, Verdict};

/// The field manager of every status write.
pub const FIELD_MANAGER: &str = "weir-controller";

/// Status writes in flight at once.
const CONCURRENT_WRITES: usize = 16;

/// After a failed write, try again this much later.
const RETRY: Duration = Duration::from_secs(5);

/// What one object should carry, and what it carries now.
#[derive(Debug, Clone)]
pub struct Target {
    /// Namespace/name.
    pub key: ObjectKey,
    /// `metadata.generation` of the object the verdict is about.
    pub generation: Option<i64>,
    /// `metadata.resourceVersion` seen.
    pub resource_version: Option<String>,
    /// Current status on the server.
    pub current: Option<EndpointStatus>,
    /// Verdict of the last recompute.
    pub verdict: Verdict,
}

/// The status `verdict` calls for. Conditions keep their `lastTransitionTime` from `previous`
/// while their `status` stays the same, so a recompute that changes nothing yields exactly
/// the status already written (and no write).
pub fn desired_status(
    verdict: &Verdict,
    generation: Option<i64>,
    previous: Option<&EndpointStatus>,
    now: Timestamp,
) -> EndpointStatus {
    let accepted_ok = verdict.reason == cond::REASON_ACCEPTED;
    let accepted = (
        cond::ACCEPTED,
        accepted_ok,
        verdict.reason,
        verdict.message.clone(),
    );
    let programmed = if verdict.served {
        (
            cond::PROGRAMMED,
            true,
            cond::REASON_PROGRAMMED,
            "the endpoint is serving in the gateway".to_string(),
        )
    } else {
        (
            cond::PROGRAMMED,
            false,
            cond::REASON_NOT_ACCEPTED,
            format!(
                "not served: Accepted is False ({}); fix the spec and the gateway picks it up",
                verdict.reason
            ),
        )
    };
    let conditions = [accepted, programmed]
        .into_iter()
        .map(|(type_, ok, reason, message)| {
            let status = if ok { cond::TRUE } else { cond::FALSE };
            let since = previous
                .and_then(|p| p.condition(type_))
                .filter(|c| c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: reason.to_string(),
                message,
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect();
    EndpointStatus {
        observed_generation: generation,
        conditions,
    }
}

/// Writes statuses while `leader` is true, from the latest `targets`.
pub async fn run_writer(
    client: Client,
    mut targets: watch::Receiver<Arc<Vec<Target>>>,
    mut leader: watch::Receiver<bool>,
) {
    // What was written, by object, with the resourceVersion it was written over: the watch
    // brings our own write back a moment later, and until then the same status is not
    // written twice.
    let mut written: HashMap<ObjectKey, (Option<String>, EndpointStatus)> = HashMap::new();
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let retry = async {
            match retry_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = targets.changed() => if r.is_err() { return },
            r = leader.changed() => if r.is_err() { return },
            _ = retry => {},
        }
        retry_at = None;
        if !*leader.borrow_and_update() {
            written.clear();
            continue;
        }
        let batch = targets.borrow_and_update().clone();
        // Objects gone from the batch were deleted (or left our scope): forget them, or the
        // cache grows for as long as we lead.
        let present: HashSet<&ObjectKey> = batch.iter().map(|t| &t.key).collect();
        written.retain(|k, _| present.contains(k));
        let now = Timestamp::now();
        let mut todo = Vec::new();
        for t in batch.iter() {
            let want = desired_status(&t.verdict, t.generation, t.current.as_ref(), now);
            if t.current.as_ref() == Some(&want) {
                written.remove(&t.key);
                continue;
            }
            if written.get(&t.key) == Some(&(t.resource_version.clone(), want.clone())) {
                continue;
            }
            todo.push((t.key.clone(), t.resource_version.clone(), want));
        }
        if todo.is_empty() {
            continue;
        }
        let results: Vec<_> = stream::iter(todo)
            .map(|(key, rv, status)| {
                let client = client.clone();
                let leader = leader.clone();
                async move {
                    // Checked per object, right before its write: a batch can take long, and
                    // with our field manager and force the API server would let a replica
                    // that lost the lease meanwhile overwrite the new holder's status.
                    if !*leader.borrow() {
                        return (key, rv, status, Written::NotLeader);
                    }
                    let r = write(client, &key, &status).await;
                    (key, rv, status, Written::Done(r))
                }
            })
            .buffer_unordered(CONCURRENT_WRITES)
            .collect()
            .await;
        let mut failed = 0usize;
        let mut skipped = 0usize;
        for (key, rv, status, r) in results {
            let r = match r {
                Written::Done(r) => r,
                Written::NotLeader => {
                    skipped += 1;
                    continue;
                }
            };
            match r {
                Ok(()) => {
                    let accepted = status.condition(cond::ACCEPTED).map(|c| c.reason.clone());
                    info!(endpoint = %key, accepted = ?accepted, "status written");
                    written.insert(key, (rv, status));
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    debug!(endpoint = %key, "object gone before its status was written");
                }
                Err(e) => {
                    failed += 1;
                    warn!(endpoint = %key, error = %e, "status write failed; will retry");
                }
            }
        }
        if skipped > 0 {
            // The leadership change wakes the loop, which clears the cache.
            info!(
                skipped,
                "lost the lease during a status batch; left the rest to the holder"
            );
        }
        if failed > 0 {
            retry_at = Some(tokio::time::Instant::now() + RETRY);
        }
    }
}

/// What became of one status write.
enum Written {
    /// The write was sent; the API server's answer.
    Done(kube::Result<()>),
    /// Not sent: this replica no longer held the lease when its turn came.
    NotLeader,
}

async fn write(client: Client, key: &ObjectKey, status: &EndpointStatus) -> kube::Result<()> {
    let api: Api<Endpoint> = Api::namespaced(client, &key.namespace);
    let patch = serde_json::json!({
        "apiVersion": "weir.dev/v1alpha1",
        "kind": "Endpoint",
        "status": status,
    });
    api.patch_status(
        &key.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(reason: &'static str, served: bool) -> Verdict {
        Verdict {
            reason,
            message: format!("because {reason}"),
            served,
        }
    }

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn accepted_endpoint_is_accepted_and_programmed() {
        let s = desired_status(&verdict(cond::REASON_ACCEPTED, true), Some(3), None, ts(10));
        assert_eq!(s.observed_generation, Some(3));
        let a = s.condition(cond::ACCEPTED).unwrap();
        assert_eq!((a.status.as_str(), a.reason.as_str()), ("True", "Accepted"));
        assert_eq!(a.observed_generation, Some(3));
        let p = s.condition(cond::PROGRAMMED).unwrap();
        assert_eq!(
            (p.status.as_str(), p.reason.as_str()),
            ("True", "Programmed")
        );
        assert_eq!(p.last_transition_time, Time(ts(10)));
    }

    #[test]
    fn rejected_endpoint_is_neither_accepted_nor_programmed() {
        for reason in [
            cond::REASON_INVALID,
            cond::REASON_CONFLICT,
            cond::REASON_RESERVED_PATH,
        ] {
            let s = desired_status(&verdict(reason, false), Some(1), None, ts(10));
            let a = s.condition(cond::ACCEPTED).unwrap();
            assert_eq!((a.status.as_str(), a.reason.as_str()), ("False", reason));
            assert_eq!(a.message, format!("because {reason}"));
            let p = s.condition(cond::PROGRAMMED).unwrap();
            assert_eq!(p.status, "False");
            assert!(p.message.contains(reason), "{}", p.message);
        }
    }

    #[test]
    fn unresolved_service_is_not_accepted_but_programmed() {
        let s = desired_status(
            &verdict(cond::REASON_UNRESOLVED_SERVICE, true),
            Some(1),
            None,
            ts(10),
        );
        assert_eq!(s.condition(cond::ACCEPTED).unwrap().status, "False");
        assert_eq!(s.condition(cond::PROGRAMMED).unwrap().status, "True");
    }

    #[test]
    fn unchanged_verdict_reproduces_the_written_status() {
        let v = verdict(cond::REASON_ACCEPTED, true);
        let first = desired_status(&v, Some(1), None, ts(10));
        let again = desired_status(&v, Some(1), Some(&first), ts(99));
        assert_eq!(first, again, "no change, so nothing to write");
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let first = desired_status(&verdict(cond::REASON_ACCEPTED, true), Some(1), None, ts(10));
        let conflict = desired_status(
            &verdict(cond::REASON_CONFLICT, false),
            Some(1),
            Some(&first),
            ts(20),
        );
        assert_eq!(
            conflict
                .condition(cond::ACCEPTED)
                .unwrap()
                .last_transition_time,
            Time(ts(20))
        );
        // Same status (False), other reason: the transition time stays.
        let invalid = desired_status(
            &verdict(cond::REASON_INVALID, false),
            Some(2),
            Some(&conflict),
            ts(30),
        );
        let a = invalid.condition(cond::ACCEPTED).unwrap();
        assert_eq!(a.last_transition_time, Time(ts(20)));
        assert_eq!(a.reason, cond::REASON_INVALID);
        assert_eq!(invalid.observed_generation, Some(2));
    }
}
