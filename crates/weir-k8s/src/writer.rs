//! Status: the pure step from a [`Verdict`] to the conditions an `Endpoint` should carry, and
//! the writer that applies them (server-side apply, one field manager, only while this
//! replica holds the lease), at a client-side rate, from the [`StatusQueue`]. Each write
//! that reports a problem (invalid spec, conflict, missing Service) also emits a Kubernetes
//! Event on the object.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::index::{ObjectKey, Stored, Verdict};
use crate::queue::{StatusQueue, TokenBucket};
use crate::resource::{Endpoint, EndpointStatus};
use crate::status::{self as cond, SeenStatus};

/// The field manager of every status write, and the reporting controller of every Event.
pub const FIELD_MANAGER: &str = "weir-controller";

/// Default client-side limit of status writes (and Events) per second.
pub const DEFAULT_QPS: f64 = 20.0;

/// Default number of writes allowed at once above the rate.
pub const DEFAULT_BURST: u32 = 40;

/// Status writes in flight at once.
const CONCURRENT_WRITES: usize = 16;

/// After a failed write, look at the object again this much later.
const RETRY: Duration = Duration::from_secs(5);

/// Longest Event note (the API allows 1 kB).
const MAX_NOTE: usize = 1000;

/// How fast the writer may talk to the API server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriterOptions {
    /// Requests per second on average (status writes and Events); 0 = unlimited.
    pub qps: f64,
    /// Requests allowed at once above the rate.
    pub burst: u32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            qps: DEFAULT_QPS,
            burst: DEFAULT_BURST,
        }
    }
}

/// What one object's status should become, waiting in the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The status to apply.
    pub status: EndpointStatus,
    /// `metadata.uid`, for the Event's reference.
    pub uid: Option<String>,
    /// The Event to emit once the status is written: a Warning for every reason but
    /// `Accepted`.
    pub event: Option<Note>,
}

/// An Event to emit about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The `Accepted` reason (`Invalid`, `Conflict`, ...).
    pub reason: &'static str,
    /// What is wrong and what to do about it.
    pub message: String,
}

/// What `object` should be written, given `verdict`; `None` when its status already says it.
pub fn pending_for(object: &Stored, verdict: &Verdict, now: Timestamp) -> Option<Pending> {
    let want = desired_status(verdict, object.generation, object.status.as_ref(), now);
    if object.status.as_ref().is_some_and(|seen| seen.is(&want)) {
        return None;
    }
    let event = (verdict.reason != cond::REASON_ACCEPTED).then(|| Note {
        reason: verdict.reason,
        message: verdict.message.clone(),
    });
    Some(Pending {
        status: want,
        uid: object.uid.clone(),
        event,
    })
}

/// The status `verdict` calls for. Conditions keep their `lastTransitionTime` from `previous`
/// while their `status` stays the same, so a recompute that changes nothing yields exactly
/// the status already written (and no write).
pub fn desired_status(
    verdict: &Verdict,
    generation: Option<i64>,
    previous: Option<&SeenStatus>,
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
            let since = Time(previous.and_then(|p| p.since(type_, status)).unwrap_or(now));
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

/// Writes what the queue holds while `leader` is true, at most `opts.qps` requests per
/// second. A failed write is handed back to the controller loop after [`RETRY`] (which looks
/// at the object again with the newest state it has); a write refused because the object is
/// gone is dropped.
pub async fn run_writer(
    client: Client,
    queue: Arc<StatusQueue<Pending>>,
    mut leader: watch::Receiver<bool>,
    opts: WriterOptions,
    identity: String,
) {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.into(),
            instance: Some(identity),
        },
    );
    let mut bucket = TokenBucket::new(opts.qps, opts.burst);
    let mut in_flight: JoinSet<(ObjectKey, Pending, Written)> = JoinSet::new();
    // Keys whose write failed, and when to look at them again.
    let mut failed: HashMap<ObjectKey, Instant> = HashMap::new();
    let mut event_failures = 0u64;
    loop {
        let leading = *leader.borrow();
        let can_write = leading && in_flight.len() < CONCURRENT_WRITES && queue.has_ready();
        let next_retry = failed.values().min().copied();
        tokio::select! {
            biased;
            Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                let Ok((key, pending, written)) = joined else { continue };
                queue.done(&key);
                match written {
                    Written::NotLeader => {}
                    Written::Done(Ok(events)) => {
                        let accepted = pending.status.condition(cond::ACCEPTED).map(|c| c.reason.as_str());
                        info!(endpoint = %key, accepted = ?accepted, "status written");
                        if let Some(Err(e)) = events {
                            event_failures += 1;
                            // One line at the first failure, then every hundredth: a missing
                            // RBAC grant must not drown the log.
                            if event_failures % 100 == 1 {
                                warn!(endpoint = %key, error = %e, failures = event_failures, "event not recorded");
                            } else {
                                debug!(endpoint = %key, error = %e, "event not recorded");
                            }
                        }
                    }
                    Written::Done(Err(kube::Error::Api(e))) if e.code == 404 => {
                        debug!(endpoint = %key, "object gone before its status was written");
                    }
                    Written::Done(Err(e)) => {
                        warn!(endpoint = %key, error = %e, "status write failed; will retry");
                        failed.insert(key, Instant::now() + RETRY);
                    }
                }
            }
            changed = leader.changed() => {
                if changed.is_err() {
                    return;
                }
                if !*leader.borrow_and_update() {
                    // The controller loop clears the queue; the new holder retries what failed.
                    failed.clear();
                }
            }
            () = sleep_until_opt(next_retry), if next_retry.is_some() => {
                let now = Instant::now();
                failed.retain(|key, at| {
                    if *at <= now {
                        queue.recheck(key.clone());
                        false
                    } else {
                        true
                    }
                });
            }
            () = queue.wait_ready(), if !can_write => {}
            () = tokio::time::sleep(bucket.wait_for(1)), if can_write => {
                if !bucket.try_take(1) {
                    continue;
                }
                let Some((key, pending)) = queue.pop() else { continue };
                // An Event is one more request: it waits for its own token.
                if pending.event.is_some() {
                    bucket.take(1).await;
                }
                let client = client.clone();
                let leader = leader.clone();
                let recorder = recorder.clone();
                in_flight.spawn(async move {
                    // Checked per object, right before its write: with our field manager and
                    // force, the API server would let a replica that lost the lease meanwhile
                    // overwrite the new holder's status.
                    if !*leader.borrow() {
                        return (key, pending, Written::NotLeader);
                    }
                    let r = match write(client, &key, &pending.status).await {
                        Ok(()) => Ok(match &pending.event {
                            Some(note) => Some(emit(&recorder, &key, pending.uid.as_deref(), note).await),
                            None => None,
                        }),
                        Err(e) => Err(e),
                    };
                    (key, pending, Written::Done(r))
                });
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// What became of one status write.
enum Written {
    /// The write was sent: the API server's answer, and the Event's when one was due.
    Done(kube::Result<Option<kube::Result<()>>>),
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

/// The Event for `note` on the Endpoint `key` (kube's recorder counts repeats into one
/// Event series instead of creating new Events).
pub fn event_of(note: &Note) -> Event {
    let mut message = note.message.clone();
    if message.len() > MAX_NOTE {
        let mut cut = MAX_NOTE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    Event {
        type_: EventType::Warning,
        reason: note.reason.to_string(),
        note: Some(message),
        action: "Accept".into(),
        secondary: None,
    }
}

/// The reference an Event on the Endpoint `key` carries.
pub fn reference_of(key: &ObjectKey, uid: Option<&str>) -> ObjectReference {
    ObjectReference {
        api_version: Some("weir.dev/v1alpha1".into()),
        kind: Some("Endpoint".into()),
        name: Some(key.name.clone()),
        namespace: Some(key.namespace.clone()),
        uid: uid.map(str::to_string),
        ..Default::default()
    }
}

async fn emit(
    recorder: &Recorder,
    key: &ObjectKey,
    uid: Option<&str>,
    note: &Note,
) -> kube::Result<()> {
    recorder
        .publish(&event_of(note), &reference_of(key, uid))
        .await
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

    fn object(status: Option<EndpointStatus>) -> Stored {
        Stored {
            key: ObjectKey::new("shop", "users"),
            generation: Some(2),
            uid: Some("u-1".into()),
            created: None,
            status: status.as_ref().map(SeenStatus::of),
        }
    }

    fn seen(status: &EndpointStatus) -> SeenStatus {
        SeenStatus::of(status)
    }

    #[test]
    fn nothing_is_queued_when_the_status_already_says_it() {
        let v = verdict(cond::REASON_ACCEPTED, true);
        let p = pending_for(&object(None), &v, ts(10)).expect("no status yet");
        assert_eq!(p.event, None, "an accepted endpoint is no Event");
        assert_eq!(p.uid.as_deref(), Some("u-1"));
        assert_eq!(pending_for(&object(Some(p.status)), &v, ts(20)), None);
    }

    /// The controller keeps a digest of the status it read, not the status: any difference
    /// from the wanted one (here someone else's edit of a message) still queues a write.
    #[test]
    fn a_status_edited_by_someone_else_is_written_again() {
        let v = verdict(cond::REASON_ACCEPTED, true);
        let written = pending_for(&object(None), &v, ts(10)).unwrap().status;
        let mut edited = written.clone();
        edited.conditions[1].message = "edited".into();
        let again = pending_for(&object(Some(edited)), &v, ts(20)).expect("a write is due");
        assert_eq!(
            again.status, written,
            "back to what the verdict says, same times"
        );
        let mut unknown = written.clone();
        unknown.conditions[0].status = "Unknown".into();
        let again = pending_for(&object(Some(unknown)), &v, ts(30)).unwrap();
        let accepted = again.status.condition(cond::ACCEPTED).unwrap();
        assert_eq!(
            accepted.last_transition_time,
            Time(ts(30)),
            "Unknown -> True is a transition"
        );
    }

    #[test]
    fn a_problem_comes_with_a_warning_event() {
        for reason in [
            cond::REASON_INVALID,
            cond::REASON_CONFLICT,
            cond::REASON_RESERVED_PATH,
            cond::REASON_UNRESOLVED_SERVICE,
        ] {
            let p = pending_for(&object(None), &verdict(reason, false), ts(10)).unwrap();
            let note = p.event.expect("an Event");
            assert_eq!(note.reason, reason);
            let ev = event_of(&note);
            assert_eq!(ev.type_, EventType::Warning);
            assert_eq!(ev.reason, reason);
            assert_eq!(
                ev.note.as_deref(),
                Some(format!("because {reason}").as_str())
            );
        }
    }

    #[test]
    fn event_notes_are_cut_to_the_api_limit_on_a_char_boundary() {
        let note = Note {
            reason: cond::REASON_INVALID,
            message: "é".repeat(MAX_NOTE),
        };
        let cut = event_of(&note).note.unwrap();
        assert!(cut.len() <= MAX_NOTE, "{}", cut.len());
        assert!(cut.chars().all(|c| c == 'é'));
        let r = reference_of(&ObjectKey::new("shop", "users"), Some("u-1"));
        assert_eq!(r.kind.as_deref(), Some("Endpoint"));
        assert_eq!(r.api_version.as_deref(), Some("weir.dev/v1alpha1"));
        assert_eq!(r.uid.as_deref(), Some("u-1"));
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
        let again = desired_status(&v, Some(1), Some(&seen(&first)), ts(99));
        assert_eq!(first, again, "no change, so nothing to write");
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let first = desired_status(&verdict(cond::REASON_ACCEPTED, true), Some(1), None, ts(10));
        let conflict = desired_status(
            &verdict(cond::REASON_CONFLICT, false),
            Some(1),
            Some(&seen(&first)),
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
            Some(&seen(&conflict)),
            ts(30),
        );
        let a = invalid.condition(cond::ACCEPTED).unwrap();
        assert_eq!(a.last_transition_time, Time(ts(20)));
        assert_eq!(a.reason, cond::REASON_INVALID);
        assert_eq!(invalid.observed_generation, Some(2));
    }
}
