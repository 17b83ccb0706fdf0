//! The `merklog.v1.Alerts` service: `WatchAlerts` streams every alert raised from
//! the moment of the call on. A read call: the access-control layer wraps it like
//! the others. A watcher that falls more than the broadcast's buffer behind is
//! ended with RESOURCE_EXHAUSTED naming how many it missed, rather than left to
//! believe it saw everything; the alert entries in the log hold them all.

use std::sync::Arc;

use merklog_proto::v1;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{Alert, Rules};

type AlertStream = ReceiverStream<Result<v1::Alert, Status>>;

/// The Alerts service.
#[derive(Clone)]
pub(crate) struct AlertsService {
    rules: Arc<Rules>,
    shutdown: watch::Receiver<bool>,
}

impl AlertsService {
    pub(crate) fn new(rules: Arc<Rules>, shutdown: watch::Receiver<bool>) -> Self {
        Self { rules, shutdown }
    }
}

fn to_wire(alert: &Alert) -> v1::Alert {
    v1::Alert {
        rule: alert.rule.clone(),
        leaf_index: alert.leaf_index,
        leaf_hash: bytes::Bytes::copy_from_slice(alert.leaf_hash.as_bytes()),
        actor: alert.actor.clone(),
        action: alert.action.clone(),
        time: alert.time.clone(),
        window_count: alert.window_count,
        key: alert.key.clone().unwrap_or_default(),
        matched_unix_ms: alert.matched_unix_ms,
    }
}

#[tonic::async_trait]
impl v1::alerts_server::Alerts for AlertsService {
    type WatchAlertsStream = AlertStream;

    async fn watch_alerts(
        &self,
        request: Request<v1::WatchAlertsRequest>,
    ) -> Result<Response<AlertStream>, Status> {
        let rule = request.into_inner().rule;
        let (tx, rx) = mpsc::channel(64);
        let mut alerts = self.rules.subscribe();
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    received = alerts.recv() => received,
                    _ = shutdown.wait_for(|s| *s) => return,
                    // The watcher went away.
                    () = tx.closed() => return,
                };
                let item = match received {
                    Ok(alert) if rule.is_empty() || alert.rule == rule => Ok(to_wire(&alert)),
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        Err(Status::resource_exhausted(format!(
                            "this watcher fell behind and {missed} alerts were skipped; the \
                             alert entries in the log hold every alert"
                        )))
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let last = item.is_err();
                if tx.send(item).await.is_err() || last {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
