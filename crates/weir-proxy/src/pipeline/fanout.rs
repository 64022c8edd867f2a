//! Fan-out: every backend of an endpoint called in parallel (or in order, for `sequential`
//! endpoints), under the endpoint deadline; answers are absorbed in arrival order.

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{Map, Value};

use crate::error::BackendError;
use crate::pipeline::deadline::{timed_out, Deadline};
use crate::pipeline::inbound::Inbound;
use crate::pipeline::merge::Outcome;
use crate::plan::CompiledEndpoint;
use crate::upstream::{self, Answer, Clients};

/// Calls backend `index` `concurrentCalls` times; the first good answer wins.
async fn call_backend(
    clients: &Clients,
    ep: &CompiledEndpoint,
    index: usize,
    inbound: &Inbound,
    previous: &[Option<Map<String, Value>>],
    deadline: Deadline,
) -> Result<Answer, BackendError> {
    let backend = &ep.backends[index];
    let n = ep.model.concurrent_calls.max(1);
    if n == 1 {
        return upstream::call(clients, ep, backend, inbound, previous, deadline.at()).await;
    }
    let mut calls: FuturesUnordered<_> = (0..n)
        .map(|_| upstream::call(clients, ep, backend, inbound, previous, deadline.at()))
        .collect();
    let mut last = BackendError::Timeout;
    while let Some(result) = calls.next().await {
        match result {
            Ok(answer) => return Ok(answer),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Every backend at once; what has not answered by the deadline is cut off.
pub async fn parallel(
    clients: &Clients,
    ep: &CompiledEndpoint,
    inbound: &Inbound,
    deadline: Deadline,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut pending: FuturesUnordered<_> = (0..ep.backends.len())
        .map(|i| async move {
            (
                i,
                call_backend(clients, ep, i, inbound, &[], deadline).await,
            )
        })
        .collect();
    let mut done = vec![false; ep.backends.len()];
    let expired = deadline.expired();
    tokio::pin!(expired);
    loop {
        tokio::select! {
            biased;
            next = pending.next() => match next {
                Some((i, result)) => {
                    done[i] = true;
                    outcome.absorb(ep, i, result);
                }
                None => break,
            },
            _ = &mut expired => {
                for (i, finished) in done.iter().enumerate() {
                    if !finished {
                        outcome.timeout(i, timed_out(ep, &ep.backends[i]));
                    }
                }
                break;
            }
        }
    }
    outcome
}

/// One backend after the other; each sees the answers before it (`{respN_field}`). The
/// first failure stops the chain.
pub async fn sequential(
    clients: &Clients,
    ep: &CompiledEndpoint,
    inbound: &Inbound,
    deadline: Deadline,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut previous: Vec<Option<Map<String, Value>>> = Vec::with_capacity(ep.backends.len());
    for i in 0..ep.backends.len() {
        let call = call_backend(clients, ep, i, inbound, &previous, deadline);
        match deadline.run(call).await {
            Some(Ok(answer)) => {
                previous.push(Some(answer.data.clone()));
                outcome.absorb(ep, i, Ok(answer));
            }
            Some(Err(e)) => {
                outcome.absorb(ep, i, Err(e));
                break;
            }
            None => {
                outcome.timeout(i, timed_out(ep, &ep.backends[i]));
                break;
            }
        }
    }
    outcome
}
