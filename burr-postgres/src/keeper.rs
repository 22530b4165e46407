//! The keeper: a thread of the persister's own, with its own connection, that renews the
//! leases this persister holds in the background (so that a lease lives as long as its
//! holder, even while it saves nothing) and gives leases back for synchronous callers
//! ([`Leases::release_lease`](burr_core::persistence::Leases::release_lease), called when
//! an application is dropped, maybe on a thread that cannot wait for async work).

use std::sync::Arc;
use std::time::Duration;

use burr_core::persistence::{Lease, PersistenceError};
use tokio::sync::mpsc;
use tokio_postgres::{Client, NoTls};

use crate::layout::{app_key, AppKey};
use crate::lease::{LeaseState, RELEASE, RENEW};
use crate::write::Shared;

/// What the keeper is asked to do.
pub(crate) enum Request {
    /// Give a lease back and say when it is done.
    Release(
        Lease,
        std::sync::mpsc::SyncSender<Result<(), PersistenceError>>,
    ),
    /// A lease was taken: its renewal may be due sooner.
    Wake,
}

/// The keeper's handle: dropping it stops the thread.
pub(crate) struct Keeper {
    requests: Option<mpsc::UnboundedSender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Keeper {
    /// Start the keeper thread.
    pub(crate) fn start(shared: Arc<Shared>) -> std::io::Result<Keeper> {
        let (requests, receiver) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("burr-postgres-keeper".to_owned())
            .spawn(move || runtime.block_on(keep(shared, receiver)))?;
        Ok(Keeper {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    /// Ask the keeper; `false` when it has stopped.
    pub(crate) fn send(&self, request: Request) -> bool {
        self.requests
            .as_ref()
            .is_some_and(|requests| requests.send(request).is_ok())
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the PostgreSQL lease keeper panicked");
            }
        }
    }
}

/// The keeper's loop: renew leases when due, answer requests, until the persister goes.
async fn keep(shared: Arc<Shared>, mut requests: mpsc::UnboundedReceiver<Request>) {
    let mut client: Option<Client> = None;
    loop {
        let wait = next_renewal_in(&shared).unwrap_or(Duration::from_secs(60));
        tokio::select! {
            request = requests.recv() => match request {
                None => return,
                Some(Request::Wake) => {}
                Some(Request::Release(lease, reply)) => {
                    let _ = reply.send(release(&shared, &mut client, &lease).await);
                }
            },
            () = tokio::time::sleep(wait) => renew_due(&shared, &mut client).await,
        }
    }
}

/// How long until an active lease is due for renewal in the background.
fn next_renewal_in(shared: &Shared) -> Option<Duration> {
    let now = shared.clock.now_micros();
    shared
        .leases()
        .values()
        .filter(|h| h.state == LeaseState::Active)
        .map(|h| (h.renewed_at_us + h.background_after_us() - now).max(0))
        .min()
        .map(|us| Duration::from_micros(u64::try_from(us).unwrap_or_default()))
}

/// The keeper's connection, made (again) when needed.
async fn connection<'a>(
    shared: &Shared,
    client: &'a mut Option<Client>,
) -> Result<&'a Client, tokio_postgres::Error> {
    if client.as_ref().is_none_or(Client::is_closed) {
        let (made, connection) = shared.target.config.connect(NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        *client = Some(made);
    }
    Ok(client.as_ref().expect("connected above"))
}

/// Give `lease` back.
async fn release(
    shared: &Shared,
    client: &mut Option<Client>,
    lease: &Lease,
) -> Result<(), PersistenceError> {
    let key = app_key(lease.partition_key.as_deref(), &lease.app_id);
    let done = async {
        let conn = connection(shared, client).await?;
        conn.execute(RELEASE, &[&key.0, &key.1, &lease.holder])
            .await
    }
    .await;
    done.map_err(|error| shared.target.error("release a lease", error))?;
    shared.forget_lease(&key, &lease.holder);
    Ok(())
}

/// Renew the active leases due for it; a lease found taken is marked lost (the next save
/// of its application reports it).
async fn renew_due(shared: &Shared, client: &mut Option<Client>) {
    let now = shared.clock.now_micros();
    let due: Vec<(AppKey, String, i64, i64)> = shared
        .leases()
        .iter()
        .filter(|(_, h)| {
            h.state == LeaseState::Active && now - h.renewed_at_us >= h.background_after_us()
        })
        .map(|(k, h)| (k.clone(), h.holder.clone(), h.attempt, h.ttl_us))
        .collect();
    for (key, holder, attempt, ttl_us) in due {
        let renewed = async {
            let conn = connection(shared, client).await?;
            conn.execute(
                RENEW,
                &[
                    &key.0,
                    &key.1,
                    &holder,
                    &attempt,
                    &now.saturating_add(ttl_us),
                ],
            )
            .await
        }
        .await;
        let mut leases = shared.leases();
        let Some(held) = leases.get_mut(&key).filter(|h| h.holder == holder) else {
            continue;
        };
        match renewed {
            Ok(1) => held.renewed_at_us = now,
            Ok(_) => held.state = LeaseState::Lost,
            Err(error) => {
                // Tried again at the next round; the lease lives until its expiry.
                tracing::warn!(database = %shared.target.name, app_id = %key.1, %error, "cannot renew a lease");
                held.renewed_at_us = now.min(held.renewed_at_us + 1_000_000);
            }
        }
    }
}
