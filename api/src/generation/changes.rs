//! Word of generations whose status or progress changed, from whichever process changed them: a
//! trigger sends their ids on commit (`NOTIFY easel_generation_changed`), one connection per
//! serving process listens, and each waiting request (an event stream, `Prefer: wait`) is woken
//! for its own generation instead of reading it from the database four times a second.

use super::GenerationId;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;

/// The channel the trigger of migration 2026-12-02-000000 notifies.
const CHANNEL: &str = "easel_generation_changed";

/// How often a waiter reads its generation while no notices can arrive (the listening connection
/// is down or not yet up): as often as before there were notices.
const UNHEARD_POLL: Duration = Duration::from_millis(250);

/// How long the listening connection may stay quiet before it is checked with a query: a
/// connection cut without a word would otherwise go unnoticed, and every waiter with it.
const LISTEN_CHECK: Duration = Duration::from_secs(30);

/// The generations someone in this process waits on, each with a signal to wake its waiters.
pub struct Changes {
    watched: Mutex<HashMap<GenerationId, watch::Sender<()>>>,
    /// Whether the listening connection is up; while it is not, waiters poll.
    heard: AtomicBool,
    /// How long a waiter goes without a notice before it reads its generation anyway.
    poll: Duration,
    /// Notices received, about any generation: a queued one's place moves only when another
    /// changes (is taken up, ends, comes back), so an unchanged count means it has not moved.
    notices: AtomicU64,
}

/// One waiter's registration for one generation; dropping it stops watching.
pub struct Watch {
    changes: Arc<Changes>,
    id: GenerationId,
    signal: watch::Receiver<()>,
}

impl Changes {
    pub fn new(poll: Duration) -> Self {
        Self {
            watched: Mutex::new(HashMap::new()),
            heard: AtomicBool::new(false),
            poll,
            notices: AtomicU64::new(0),
        }
    }

    fn watched(&self) -> std::sync::MutexGuard<'_, HashMap<GenerationId, watch::Sender<()>>> {
        // Single inserts and removes: the map is whole after any panic.
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts watching `id`. Call it before reading the generation: a change after this call is
    /// never missed.
    pub fn watch(self: &Arc<Self>, id: GenerationId) -> Watch {
        let signal = self
            .watched()
            .entry(id)
            .or_insert_with(|| watch::channel(()).0)
            .subscribe();
        Watch {
            changes: Arc::clone(self),
            id,
            signal,
        }
    }

    /// Whether notices are arriving (the listening connection is up).
    pub fn heard(&self) -> bool {
        self.heard.load(Ordering::Relaxed)
    }

    /// How many generations are waited on.
    pub fn watched_count(&self) -> usize {
        self.watched().len()
    }

    /// How many notices have arrived (see `notices`); it only grows.
    pub fn notices(&self) -> u64 {
        self.notices.load(Ordering::Relaxed)
    }

    fn changed(&self, ids: impl Iterator<Item = GenerationId>) {
        self.notices.fetch_add(1, Ordering::Relaxed);
        let watched = self.watched();
        for id in ids {
            if let Some(signal) = watched.get(&id) {
                signal.send_replace(());
            }
        }
    }

    /// Wakes every waiter: what changed while nobody listened is not known.
    fn changed_all(&self) {
        self.notices.fetch_add(1, Ordering::Relaxed);
        for signal in self.watched().values() {
            signal.send_replace(());
        }
    }
}

impl Watch {
    /// Resolves once the generation may have changed since the last call (or since the watch
    /// began), or when it is time to read it anyway.
    pub async fn next(&mut self) {
        let wait = if self.changes.heard() {
            self.changes.poll
        } else {
            UNHEARD_POLL
        };
        // A closed channel cannot happen while this receiver is registered; sleep out the wait.
        if let Ok(Err(_)) = tokio::time::timeout(wait, self.signal.changed()).await {
            tokio::time::sleep(wait).await;
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut watched = self.changes.watched();
        // This receiver is still alive here: it is the last when the count is one.
        if watched
            .get(&self.id)
            .is_some_and(|signal| signal.receiver_count() <= 1)
        {
            watched.remove(&self.id);
        }
    }
}

/// Listens for notices on a connection of its own for as long as the process runs, connecting
/// again a second after any failure.
pub fn spawn_listener(changes: Arc<Changes>, database_url: String) {
    tokio::spawn(async move {
        loop {
            let ended = listen(&changes, &database_url).await;
            changes.heard.store(false, Ordering::Relaxed);
            if let Err(e) = ended {
                tracing::warn!(error = %e, "not hearing generation changes; waiters poll until it is back");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

async fn listen(changes: &Changes, database_url: &str) -> anyhow::Result<()> {
    // Here only: its `load` would shadow the atomics'.
    use diesel_async::RunQueryDsl;
    let mut conn = tokio::time::timeout(LISTEN_CHECK, AsyncPgConnection::establish(database_url))
        .await
        .map_err(|_| anyhow::anyhow!("connecting to listen timed out"))??;
    diesel::sql_query(format!("LISTEN {CHANNEL}"))
        .execute(&mut conn)
        .await?;
    changes.heard.store(true, Ordering::Relaxed);
    changes.changed_all();
    loop {
        let notice = {
            let mut notices = std::pin::pin!(conn.notifications_stream());
            tokio::time::timeout(LISTEN_CHECK, notices.next()).await
        };
        match notice {
            Ok(Some(notice)) => changes.changed(ids_of(&notice?.payload)),
            Ok(None) => anyhow::bail!("the listening connection closed"),
            Err(_quiet) => {
                // A connection that cannot answer is dropped: its backend would otherwise hold
                // back PostgreSQL's notification queue, which every notifying commit writes to.
                tokio::time::timeout(
                    LISTEN_CHECK,
                    diesel::sql_query("SELECT 1").execute(&mut conn),
                )
                .await
                .map_err(|_| anyhow::anyhow!("the listening connection stopped answering"))??;
            }
        }
    }
}

/// The ids of a notice's payload; anything that is not one is skipped.
fn ids_of(payload: &str) -> impl Iterator<Item = GenerationId> + '_ {
    payload
        .split(',')
        .filter_map(|id| uuid::Uuid::parse_str(id.trim()).ok())
        .map(GenerationId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_wakes_the_waiters_of_that_generation_only() {
        let changes = Arc::new(Changes::new(Duration::from_secs(3600)));
        changes.heard.store(true, Ordering::Relaxed);
        let (a, b) = (
            GenerationId(uuid::Uuid::now_v7()),
            GenerationId(uuid::Uuid::now_v7()),
        );
        let mut first = changes.watch(a);
        let mut second = changes.watch(a);
        let mut other = changes.watch(b);
        // Said before anyone waits: still heard by both of a's waiters.
        changes.changed(ids_of(&format!("{},not-an-id", a.0)));
        let woken = tokio::time::timeout(Duration::from_secs(5), async {
            first.next().await;
            second.next().await;
        })
        .await;
        assert!(woken.is_ok(), "both of a's waiters woke");
        let quiet = tokio::time::timeout(Duration::from_millis(50), other.next()).await;
        assert!(quiet.is_err(), "b's waiter slept on");
        drop(first);
        assert_eq!(
            changes.watched().len(),
            2,
            "a is watched while one waiter is left"
        );
        drop(second);
        drop(other);
        assert!(
            changes.watched().is_empty(),
            "nothing watched is left behind"
        );
    }
}
