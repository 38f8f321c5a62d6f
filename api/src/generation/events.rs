//! The Server-Sent Events stream of one generation: its state as JSON whenever status or progress
//! changes, a keep-alive comment when nothing does, and the end after the terminal state. It reads
//! the generation when word of a change comes (`changes`), and while it is queued also at most
//! every [`QUEUE_REFRESH`] when word came of any other generation, since the jobs ahead of it move
//! on without word to this one. A queue that does not move costs nothing. A job seen leaving the
//! queue is read again [`START_SETTLE`] later before "starting" is said: one that met a busy
//! provider goes straight back, and its stream would otherwise flicker between the two.

use super::GenerationId;
use super::changes::Watch;
use super::service;
use crate::app::AppState;
use crate::identity::Principal;
use bytes::Bytes;
use futures_util::Stream;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often a queued generation's `queued_ahead` is counted again.
const QUEUE_REFRESH: Duration = Duration::from_secs(2);
/// How long a job must stay taken up before its stream says it left the queue. A busy provider's
/// answer comes within a request's time; a job that starts is in no hurry to be told (its first
/// progress follows within a heartbeat).
const START_SETTLE: Duration = Duration::from_secs(1);

struct Cursor {
    state: Arc<AppState>,
    principal: Principal,
    id: GenerationId,
    watch: Watch,
    last_sent: Option<String>,
    last_write: Instant,
    /// The generation has been read since the last word of a change: wait for the next first.
    read: bool,
    /// It was queued when last read.
    queued: bool,
    /// `Changes::notices` when it was last read.
    notices: u64,
    /// It was seen taken up from the queue and is being read again after [`START_SETTLE`].
    settling: bool,
    done: bool,
}

pub fn stream(
    state: Arc<AppState>,
    principal: Principal,
    id: GenerationId,
    last_seen: Option<String>,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    let start = Cursor {
        watch: state.changes.watch(id),
        state,
        principal,
        id,
        last_sent: last_seen,
        last_write: Instant::now(),
        read: false,
        queued: false,
        notices: 0,
        settling: false,
        done: false,
    };
    futures_util::stream::unfold(start, |mut cursor| async move {
        if cursor.done {
            return None;
        }
        loop {
            if cursor.read {
                let keep_alive_due = KEEP_ALIVE.saturating_sub(cursor.last_write.elapsed());
                let wait = if cursor.queued {
                    keep_alive_due.min(QUEUE_REFRESH)
                } else {
                    keep_alive_due
                };
                let quiet = tokio::time::timeout(wait, cursor.watch.next())
                    .await
                    .is_err();
                if quiet && cursor.last_write.elapsed() >= KEEP_ALIVE {
                    // Quiet for a while: a comment keeps proxies from closing the stream. Nothing
                    // changed, so nothing is read.
                    cursor.last_write = Instant::now();
                    return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), cursor));
                }
                let changes = &cursor.state.changes;
                if quiet && changes.heard() && changes.notices() == cursor.notices {
                    // Nothing anywhere changed: the queue ahead has not moved.
                    continue;
                }
            }
            cursor.read = true;
            cursor.notices = cursor.state.changes.notices();
            let generation = match service::get(&cursor.state, &cursor.principal, cursor.id).await {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(generation.id = %cursor.id, error = %e, "event stream ended early");
                    return None;
                }
            };
            let left_queue = generation.status == super::Status::Starting
                && cursor
                    .last_sent
                    .as_deref()
                    .is_some_and(|sent| sent.starts_with("queued:"));
            if left_queue && !cursor.settling {
                cursor.settling = true;
                tokio::time::sleep(START_SETTLE).await;
                cursor.read = false;
                continue;
            }
            cursor.settling = false;
            cursor.queued = generation.queued_ahead.is_some();
            let event_id = match generation.queued_ahead {
                Some(ahead) => format!(
                    "{}:{}:{ahead}",
                    generation.status.as_str(),
                    generation.progress
                ),
                None => format!("{}:{}", generation.status.as_str(), generation.progress),
            };
            let terminal = generation.status.is_terminal();
            if cursor.last_sent.as_deref() != Some(event_id.as_str()) {
                let data = serde_json::to_string(&generation).unwrap_or_default();
                cursor.last_sent = Some(event_id.clone());
                cursor.last_write = Instant::now();
                cursor.done = terminal;
                let frame = format!("id: {event_id}\nevent: generation\ndata: {data}\n\n");
                return Some((Ok(Bytes::from(frame)), cursor));
            }
            if terminal {
                return None;
            }
        }
    })
}
