//! Leader election on a `coordination.k8s.io/v1` Lease, so that several replicas never fight
//! over status. Every replica watches and serves; only the holder writes status.
//!
//! Expiry is judged the way client-go does it: by how long the lease record has stayed
//! unchanged on this replica's own clock, not by comparing clocks across machines.
//!
//! The timing keeps the holder's belief strictly inside every follower's patience:
//!
//! * the holder counts its validity from just *before* it sent the renewal (a follower cannot
//!   see the renewal before it was sent), and only for the renew deadline, two thirds of the
//!   lease duration, which leaves a margin for clock rate differences and write latency;
//! * a follower takes over only after seeing the same record unchanged for the full lease
//!   duration, counted from when its read *returned*;
//! * every round is bounded by the renew deadline, and a timer drops leadership when the
//!   validity passes even while a request is still hanging (kube's client has no read timeout).

use std::future::Future;
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
    /// How long the holder trusts one successful renewal, counted from before the request was
    /// sent: two thirds of the duration, so it stops writing well before a follower that
    /// waits the full duration may take over.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// How often the holder renews, and others look: a fifth of the duration, so a holder gets
    /// several attempts within its renew deadline before it has to step down.
    pub fn retry_period(&self) -> Duration {
        (self.duration / 5)
            .max(Duration::from_millis(100))
            .min(self.renew_deadline() / 2)
    }

    /// `leaseDurationSeconds` to write: rounded up, so that followers never wait less than
    /// the duration the holder computed its deadline from.
    fn lease_seconds(&self) -> i32 {
        let secs = self.duration.as_secs() + u64::from(self.duration.subsec_nanos() > 0);
        i32::try_from(secs).unwrap_or(i32::MAX).max(1)
    }
}

/// The parts of a lease record whose change shows that the holder is alive.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    /// `renewTime` in microseconds: the API server stores `MicroTime` at that precision, so
    /// comparing nanoseconds would make every read of our own write look like a change.
    renew_us: Option<i64>,
}

impl Record {
    fn of(spec: &LeaseSpec) -> Self {
        Self {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            renew_us: spec.renew_time.as_ref().map(|t| t.0.as_microsecond()),
        }
    }
}

/// The holder record as last seen, and when it last changed on our clock.
struct Observed {
    record: Record,
    since: Instant,
}

impl Observed {
    /// Whether the holder may be replaced at `now`: nobody holds it, or the record has stayed
    /// unchanged for `held_for` on our own clock.
    fn expired(&self, now: Instant, held_for: Duration) -> bool {
        self.record.holder.is_none() || now.saturating_duration_since(self.since) >= held_for
    }
}

/// What one round found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// We hold the lease: created, renewed or taken over.
    Renewed,
    /// Another replica holds a lease that has not expired.
    HeldByOther,
    /// Someone wrote between our read and our write; look again next round.
    Conflict,
}

/// Why a round gave no answer.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("no answer from the API server within {0:?}")]
    Timeout(Duration),
}

/// Runs the election forever, publishing `true` on `leader` while this replica holds the lease.
pub async fn run(client: Client, opts: LeaseOptions, leader: watch::Sender<bool>) {
    let api: Api<Lease> = Api::namespaced(client, &opts.namespace);
    let renew_deadline = opts.renew_deadline();
    let mut observed: Option<Observed> = None;
    // Until when our last successful renewal lets us lead; `None` when we do not.
    let mut valid_until: Option<Instant> = None;
    let mut failures = 0u32;
    loop {
        // Taken before the request: a follower cannot see our write before we sent it, so
        // validity counted from here never outlasts the follower's expiry.
        let start = Instant::now();
        let round = async {
            match tokio::time::timeout(
                renew_deadline,
                try_acquire_or_renew(&api, &opts, &mut observed),
            )
            .await
            {
                Ok(r) => r.map_err(RoundError::from),
                Err(_) => Err(RoundError::Timeout(renew_deadline)),
            }
        };
        match until_expiry(round, &mut valid_until, &leader, &opts).await {
            Ok(round) => {
                if failures > 0 {
                    info!(lease = %opts.name, "lease API reachable again");
                }
                failures = 0;
                match round {
                    Round::Renewed => valid_until = Some(start + renew_deadline),
                    Round::HeldByOther => valid_until = None,
                    // Our earlier renewal still counts: the timer ends it if none follows.
                    Round::Conflict => {}
                }
            }
            Err(e) => {
                failures += 1;
                warn!(lease = %opts.name, error = %e, failures, "lease update failed");
            }
        }
        publish(&leader, &opts, is_valid(valid_until, Instant::now()));
        let next = start + opts.retry_period();
        until_expiry(
            tokio::time::sleep_until(next),
            &mut valid_until,
            &leader,
            &opts,
        )
        .await;
    }
}

/// Whether a renewal valid until `valid_until` still lets us lead at `now`.
fn is_valid(valid_until: Option<Instant>, now: Instant) -> bool {
    valid_until.is_some_and(|t| now < t)
}

/// Publishes `held` on `leader` if it changed.
fn publish(leader: &watch::Sender<bool>, opts: &LeaseOptions, held: bool) {
    if *leader.borrow() == held {
        return;
    }
    if held {
        info!(identity = %opts.identity, lease = %opts.name, "became leader: writing status");
    } else {
        info!(identity = %opts.identity, lease = %opts.name, "not the leader: status is left to the holder");
    }
    leader.send_replace(held);
}

/// Awaits `fut`, stepping down the moment `valid_until` passes meanwhile: a hanging request
/// must not keep us leading past what a follower will wait.
async fn until_expiry<F: Future>(
    fut: F,
    valid_until: &mut Option<Instant>,
    leader: &watch::Sender<bool>,
    opts: &LeaseOptions,
) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    loop {
        let Some(deadline) = *valid_until else {
            return fut.await;
        };
        tokio::select! {
            // Expiry first: when both are ready, stepping down is the safe side.
            biased;
            () = tokio::time::sleep_until(deadline) => {
                *valid_until = None;
                if *leader.borrow() {
                    warn!(identity = %opts.identity, lease = %opts.name, "lease not renewed within the renew deadline: stepping down");
                }
                publish(leader, opts, false);
            }
            out = &mut fut => return out,
        }
    }
}

/// `now` at the precision the API server keeps, so what we write is what we read back.
fn now_micro() -> MicroTime {
    let now = Timestamp::now();
    MicroTime(Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now))
}

async fn try_acquire_or_renew(
    api: &Api<Lease>,
    opts: &LeaseOptions,
    observed: &mut Option<Observed>,
) -> kube::Result<Round> {
    let now = now_micro();
    let secs = opts.lease_seconds();
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
                    record: Record {
                        holder: Some(opts.identity.clone()),
                        renew_us: Some(now.0.as_microsecond()),
                    },
                    since: Instant::now(),
                });
                Ok(Round::Renewed)
            }
            // Someone else created it first: look again next round.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Round::Conflict),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let record = Record::of(&spec);
    // Taken after the read returned: the later a follower starts counting, the safer.
    let seen_at = Instant::now();
    if observed.as_ref().is_none_or(|o| o.record != record) {
        *observed = Some(Observed {
            record: record.clone(),
            since: seen_at,
        });
    }
    let holder = record.holder;
    let mine = holder.as_deref() == Some(opts.identity.as_str());
    let held_for = spec
        .lease_duration_seconds
        .map(|s| Duration::from_secs(u64::try_from(s.max(1)).unwrap_or(1)))
        .unwrap_or(opts.duration);
    let expired = observed
        .as_ref()
        .is_none_or(|o| o.expired(seen_at, held_for));
    if !mine && !expired {
        debug!(holder = ?holder, "lease held by another replica");
        return Ok(Round::HeldByOther);
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
                record: Record {
                    holder: Some(opts.identity.clone()),
                    renew_us: Some(now.0.as_microsecond()),
                },
                since: Instant::now(),
            });
            if !mine {
                info!(previous = ?holder, "took over an expired lease");
            }
            Ok(Round::Renewed)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Round::Conflict),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    fn opts(duration: Duration) -> LeaseOptions {
        LeaseOptions {
            namespace: "ns".into(),
            name: "weir-controller".into(),
            identity: "me".into(),
            duration,
        }
    }

    fn spec(holder: &str, renew: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(renew)),
            ..Default::default()
        }
    }

    #[test]
    fn holder_trusts_a_renewal_for_less_than_followers_wait() {
        for secs in [1, 2, 10, 15, 60] {
            let o = opts(Duration::from_secs(secs));
            assert!(o.renew_deadline() < o.duration, "{secs}s");
            // At least two renewals fit before the holder has to step down.
            assert!(o.retry_period() * 2 <= o.renew_deadline(), "{secs}s");
        }
        let o = opts(Duration::from_secs(15));
        assert_eq!(o.renew_deadline(), Duration::from_secs(10));
        assert_eq!(o.retry_period(), Duration::from_secs(3));
    }

    #[test]
    fn lease_seconds_round_up() {
        assert_eq!(opts(Duration::from_secs(15)).lease_seconds(), 15);
        assert_eq!(opts(Duration::from_millis(1500)).lease_seconds(), 2);
        assert_eq!(opts(Duration::from_millis(10)).lease_seconds(), 1);
    }

    #[test]
    fn records_compare_at_microsecond_precision() {
        let written = Timestamp::from_nanosecond(1_700_000_000_123_456_789).unwrap();
        let stored = Timestamp::from_nanosecond(1_700_000_000_123_456_000).unwrap();
        assert_eq!(
            Record::of(&spec("a", written)),
            Record::of(&spec("a", stored)),
            "the server dropping nanoseconds is no change"
        );
        let next = Timestamp::from_nanosecond(1_700_000_000_123_457_000).unwrap();
        assert_ne!(Record::of(&spec("a", stored)), Record::of(&spec("a", next)));
        assert_ne!(
            Record::of(&spec("a", stored)),
            Record::of(&spec("b", stored))
        );
        assert_eq!(Record::of(&spec("", stored)).holder, None);
        // What we write is already at the stored precision.
        assert_eq!(now_micro().0.subsec_nanosecond() % 1000, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn follower_waits_the_full_duration_on_its_own_clock() {
        let seen = Observed {
            record: Record::of(&spec("a", Timestamp::now())),
            since: Instant::now(),
        };
        let d = Duration::from_secs(15);
        tokio::time::advance(d - Duration::from_millis(1)).await;
        assert!(!seen.expired(Instant::now(), d));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(seen.expired(Instant::now(), d));
        let nobody = Observed {
            record: Record {
                holder: None,
                renew_us: None,
            },
            since: Instant::now(),
        };
        assert!(nobody.expired(Instant::now(), d));
    }

    #[tokio::test(start_paused = true)]
    async fn holder_validity_ends_before_any_follower_may_take_over() {
        let o = opts(Duration::from_secs(15));
        // The holder sends its renewal at `start`; the earliest a follower can see it is then.
        let start = Instant::now();
        let valid_until = start + o.renew_deadline();
        let follower = Observed {
            record: Record::of(&spec("me", Timestamp::now())),
            since: start,
        };
        assert!(is_valid(
            Some(valid_until),
            valid_until - Duration::from_millis(1)
        ));
        assert!(!is_valid(Some(valid_until), valid_until));
        assert!(!is_valid(None, start));
        assert!(!follower.expired(valid_until, o.duration));
        // The margin left for clock rate differences and the follower's own write.
        assert_eq!(o.duration - o.renew_deadline(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn leadership_ends_at_the_deadline_while_a_request_hangs() {
        let o = opts(Duration::from_secs(15));
        let (tx, rx) = watch::channel(true);
        let t0 = Instant::now();
        let mut valid_until = Some(t0 + o.renew_deadline());
        let stepped_down = tokio::spawn(async move {
            let mut rx = rx;
            rx.wait_for(|l| !*l).await.unwrap();
            t0.elapsed()
        });
        let hung = tokio::time::timeout(
            Duration::from_secs(60),
            until_expiry(std::future::pending::<()>(), &mut valid_until, &tx, &o),
        )
        .await;
        assert!(hung.is_err(), "the request never answers");
        assert_eq!(valid_until, None);
        assert_eq!(stepped_down.await.unwrap(), o.renew_deadline());
    }

    #[tokio::test(start_paused = true)]
    async fn a_prompt_answer_keeps_leadership() {
        let o = opts(Duration::from_secs(15));
        let (tx, rx) = watch::channel(true);
        let mut valid_until = Some(Instant::now() + o.renew_deadline());
        let out = until_expiry(
            async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                7
            },
            &mut valid_until,
            &tx,
            &o,
        )
        .await;
        assert_eq!(out, 7);
        assert!(valid_until.is_some());
        assert!(*rx.borrow());
    }

    /// A fake API server that lets the first replica create the lease, then never answers.
    async fn hanging_api_server() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let requests = requests.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let n = requests.fetch_add(1, Ordering::SeqCst);
                        async move {
                            let body = req.into_body().collect().await?.to_bytes();
                            let (code, body) = match n {
                                0 => (
                                    404,
                                    Bytes::from_static(
                                        br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","reason":"NotFound","code":404}"#,
                                    ),
                                ),
                                1 => (201, body),
                                _ => std::future::pending().await,
                            };
                            Ok::<_, hyper::Error>(
                                hyper::Response::builder()
                                    .status(code)
                                    .header("content-type", "application/json")
                                    .body(Full::new(body))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_leader_whose_api_hangs_steps_down_within_the_renew_deadline() {
        let addr = hanging_api_server().await;
        let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let o = opts(Duration::from_secs(1));
        let (tx, mut rx) = watch::channel(false);
        let task = tokio::spawn(run(client, o.clone(), tx));
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|l| *l))
            .await
            .expect("became leader")
            .unwrap();
        let led_at = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|l| !*l))
            .await
            .expect("stepped down although every renewal hangs")
            .unwrap();
        let led_for = led_at.elapsed();
        // The safety property: it stepped down before a follower could take over (a full
        // lease duration after the last renewal). The renew deadline (2/3 of it) is the
        // margin that keeps this true on a loaded machine, so it is not asserted to the ms.
        assert!(
            led_for < o.duration,
            "led for {led_for:?}, as long as a follower waits ({:?})",
            o.duration
        );
        task.abort();
    }
}
