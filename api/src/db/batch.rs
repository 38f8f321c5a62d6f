//! Natural batching for hot statements: callers who arrive while a batch is running wait for it,
//! then go together in the next one. Under load a statement's fixed cost (the round trip, the
//! executor's start, the commit) is paid once per batch instead of once per caller; when idle a
//! caller waits for nobody, since an empty queue is taken at once.

use super::Pool;
use futures_util::future::BoxFuture;
use std::sync::{Arc, OnceLock};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Runs one batch: one output per input, in the same order.
pub type Run<I, O> = fn(Pool, Vec<I>) -> BoxFuture<'static, Vec<O>>;

type Queue<I, O> = mpsc::UnboundedSender<(I, oneshot::Sender<O>)>;

/// At most this many callers go in one batch.
const MAX_BATCH: usize = 256;

pub struct Batcher<I, O> {
    pool: Pool,
    run: Run<I, O>,
    /// Batches that may run at once, each on its own connection.
    lanes: usize,
    /// Started by the first call, on that caller's runtime: each HTTP worker keeps its own
    /// batcher, so its batches run on its own event loop and pool (see `server::serve`).
    queue: OnceLock<Queue<I, O>>,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    pub fn new(pool: Pool, lanes: usize, run: Run<I, O>) -> Self {
        Self {
            pool,
            run,
            lanes: lanes.max(1),
            queue: OnceLock::new(),
        }
    }

    /// The output for `item`, or `None` if its batch was lost (the runtime is shutting down or the
    /// batch panicked).
    pub async fn call(&self, item: I) -> Option<O> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .get_or_init(|| self.start())
            .send((item, reply))
            .ok()?;
        answer.await.ok()
    }

    fn start(&self) -> Queue<I, O> {
        let (queue, mut waiting) = mpsc::unbounded_channel::<(I, oneshot::Sender<O>)>();
        let (pool, run) = (self.pool.clone(), self.run);
        let lanes = Arc::new(Semaphore::new(self.lanes));
        tokio::spawn(async move {
            let mut taken = Vec::with_capacity(MAX_BATCH);
            loop {
                // A free lane first, then everyone who is waiting by then.
                let Ok(lane) = lanes.clone().acquire_owned().await else {
                    return;
                };
                if waiting.recv_many(&mut taken, MAX_BATCH).await == 0 {
                    return; // every sender is gone
                }
                let (inputs, replies): (Vec<I>, Vec<_>) = taken.drain(..).unzip();
                let pool = pool.clone();
                tokio::spawn(async move {
                    let outputs = run(pool, inputs).await;
                    for (reply, output) in replies.into_iter().zip(outputs) {
                        let _ = reply.send(output);
                    }
                    drop(lane);
                });
            }
        });
        queue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lazy_pool() -> Pool {
        // Never connected: the runs below do not touch it.
        super::super::pool("postgres://nobody@127.0.0.1:1/none", 1).expect("pool")
    }

    fn double(_: Pool, items: Vec<u32>) -> BoxFuture<'static, Vec<(u32, usize)>> {
        Box::pin(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let n = items.len();
            items.into_iter().map(|i| (i * 2, n)).collect()
        })
    }

    #[tokio::test]
    async fn callers_who_wait_together_go_together_and_each_gets_their_own_answer() {
        let batcher = Arc::new(Batcher::new(lazy_pool(), 1, double));
        // The first call runs alone; the 50 that arrive while it runs share the next batch.
        let first = {
            let b = batcher.clone();
            tokio::spawn(async move { b.call(1).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let rest: Vec<_> = (2..52)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { b.call(i).await })
            })
            .collect();
        assert_eq!(first.await.expect("join"), Some((2, 1)));
        for (i, call) in (2..52).zip(rest) {
            assert_eq!(call.await.expect("join"), Some((i * 2, 50)));
        }
    }
}
