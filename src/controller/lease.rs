//! Leader election on a `coordination.k8s.io/v1` Lease, so that several replicas never fight
//! over status. Every replica watches and serves; only the holder writes status.
//!
//! Expiry is judged the way client-go does it: by how long the lease record has stayed
//! unchanged on this replica's own clock, not by comparing clocks across machines.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Where the lease lives and how long it lasts.
#[derive(Debug, Clone)]
pub struct LeaseOptions {
    /// Namespace of the Lease object.
    pub namespace: String,
    /// Name of the Lease object.
    pub name: String,
    /// This replica's identity (`holderIdentity`).
    pub identity: String,
    /// `leaseDurationSeconds`: a holder that has not renewed for this long loses the lease.
    pub duration: Duration,
}

impl LeaseOptions {
    /// How often the holder renews, and others look: a third of the duration.
    pub fn retry_period(&self) -> Duration {
        (self.duration / 3).max(Duration::from_millis(200))
    }
}

/// The holder record as last seen, and when it last changed on our clock.
struct Observed {
    holder: Option<String>,
    renew: Option<MicroTime>,
    since: Instant,
}

/// Runs the election forever, publishing `true` on `leader` while this replica holds the lease.
pub async fn run(client: Client, opts: LeaseOptions, leader: watch::Sender<bool>) {
    let api: Api<Lease> = Api::namespaced(client, &opts.namespace);
    let mut observed: Option<Observed> = None;
    let mut failures = 0u32;
    loop {
        let held = match try_acquire_or_renew(&api, &opts, &mut observed).await {
            Ok(held) => {
                if failures > 0 {
                    info!(lease = %opts.name, "lease API reachable again");
                }
                failures = 0;
                held
            }
            Err(e) => {
                failures += 1;
                warn!(lease = %opts.name, error = %e, failures, "lease update failed");
                // Keep leading only while our last renewal is still within the duration.
                let still_valid = observed.as_ref().is_some_and(|o| {
                    o.holder.as_deref() == Some(&opts.identity) && o.since.elapsed() < opts.duration
                });
                still_valid
            }
        };
        if *leader.borrow() != held {
            if held {
                info!(identity = %opts.identity, lease = %opts.name, "became leader: writing status");
            } else {
                info!(identity = %opts.identity, lease = %opts.name, "not the leader: status is left to the holder");
            }
            leader.send_replace(held);
        }
        tokio::time::sleep(opts.retry_period()).await;
    }
}

async fn try_acquire_or_renew(
    api: &Api<Lease>,
    opts: &LeaseOptions,
    observed: &mut Option<Observed>,
) -> kube::Result<bool> {
    let now = MicroTime(Timestamp::now());
    let secs = i32::try_from(opts.duration.as_secs())
        .unwrap_or(i32::MAX)
        .max(1);
    let Some(mut lease) = api.get_opt(&opts.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(opts.name.clone()),
                namespace: Some(opts.namespace.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(opts.identity.clone()),
                lease_duration_seconds: Some(secs),
                acquire_time: Some(now.clone()),
                renew_time: Some(now.clone()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => {
                *observed = Some(Observed {
                    holder: Some(opts.identity.clone()),
                    renew: Some(now),
                    since: Instant::now(),
                });
                Ok(true)
            }
            // Someone else created it first: look again next round.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let changed = observed
        .as_ref()
        .is_none_or(|o| o.holder != holder || o.renew != spec.renew_time);
    if changed {
        *observed = Some(Observed {
            holder: holder.clone(),
            renew: spec.renew_time.clone(),
            since: Instant::now(),
        });
    }
    let mine = holder.as_deref() == Some(&opts.identity);
    let held_for = spec
        .lease_duration_seconds
        .map(|s| Duration::from_secs(s.max(1) as u64))
        .unwrap_or(opts.duration);
    let expired = holder.is_none()
        || observed
            .as_ref()
            .is_some_and(|o| o.since.elapsed() >= held_for);
    if !mine && !expired {
        debug!(holder = ?holder, "lease held by another replica");
        return Ok(false);
    }
    let mut new_spec = spec.clone();
    new_spec.holder_identity = Some(opts.identity.clone());
    new_spec.lease_duration_seconds = Some(secs);
    new_spec.renew_time = Some(now.clone());
    if !mine {
        new_spec.acquire_time = Some(now.clone());
        new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    lease.spec = Some(new_spec);
    // replace() sends the resourceVersion we read: if another replica wrote in between,
    // the API server answers 409 and we simply look again next round.
    match api
        .replace(&opts.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => {
            *observed = Some(Observed {
                holder: Some(opts.identity.clone()),
                renew: Some(now),
                since: Instant::now(),
            });
            if !mine {
                info!(previous = ?holder, "took over an expired lease");
            }
            Ok(true)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
