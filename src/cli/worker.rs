//! `worker`: one [`Worker`] per queue, until a signal; their counts on the way out.

use std::io::Write;
use std::time::Duration;

use saga_aws::{SdkConfig, Worker, WorkerStats};

use super::{Failure, aws, fail, write};

/// How the `worker` subcommand keeps idempotency records and stops.
#[derive(Debug)]
pub(super) struct WorkerOptions {
    pub(super) concurrency: usize,
    pub(super) bus: Option<String>,
    pub(super) table: Option<String>,
    pub(super) in_memory_store: bool,
    pub(super) drain_timeout: Duration,
}

/// Runs a worker on each of `urls` for `sagas` until SIGINT or SIGTERM; a second signal, or
/// the drain timeout, ends the drain. Prints each worker's counts, whatever ended it.
pub(super) async fn run(
    config: &SdkConfig,
    sagas: &[saga_core::Saga],
    urls: Vec<String>,
    options: WorkerOptions,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let mut workers = Vec::new();
    for url in &urls {
        let mut builder = Worker::builder(config, url)
            .concurrency(options.concurrency)
            .drain_timeout(options.drain_timeout);
        for saga in sagas {
            builder = builder.saga(saga.clone());
        }
        if let Some(bus) = &options.bus {
            builder = builder.events(saga_aws::EventPublisher::new(config, bus));
        }
        builder = match (&options.table, options.in_memory_store) {
            (_, true) => builder.in_memory_store(),
            (Some(table), false) => builder.table(table),
            (None, false) => builder,
        };
        let worker = builder.build().map_err(aws)?;
        worker.ready().await.map_err(aws)?;
        workers.push(worker);
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut running = Vec::new();
    for worker in &workers {
        let (worker, mut stopped) = (worker.clone(), stopped.clone());
        running.push(tokio::spawn(async move {
            worker
                .run_until(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        }));
    }
    for url in &urls {
        write(out, format!("worker on {url}"))?;
    }
    out.flush().ok();
    let mut signals = Signals::new()?;
    let mut all = std::pin::pin!(async move {
        let mut results = Vec::new();
        for worker in running {
            results.push(worker.await);
        }
        results
    });
    let results = tokio::select! {
        results = &mut all => results,
        () = signals.next() => {
            write(out, format!("stopping: finishing the commands in flight (at most {} s; a second signal stops now)", options.drain_timeout.as_secs()))?;
            out.flush().ok();
            let _ = stop.send(true);
            tokio::select! {
                results = &mut all => results,
                () = signals.next() => {
                    write(out, "stopping now: releasing the commands in flight")?;
                    for worker in &workers {
                        worker.stop_now();
                    }
                    all.await
                }
            }
        }
    };
    let mut first_error = None;
    for (url, result) in urls.iter().zip(results) {
        match result {
            Ok(Ok(stats)) => write(out, format!("{url}: {}", counts(&stats)))?,
            Ok(Err(e)) => {
                write(out, format!("{url}: {}", counts(&WorkerStats::default())))?;
                first_error.get_or_insert_with(|| aws(e));
            }
            Err(e) => {
                first_error
                    .get_or_insert_with(|| Failure::Error(format!("a worker panicked: {e}")));
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

fn counts(s: &WorkerStats) -> String {
    format!(
        "{} received, {} succeeded, {} failed, {} malformed, {} expired, {} released",
        s.received, s.succeeded, s.failed, s.malformed, s.expired, s.released
    )
}

/// SIGINT (Ctrl-C) and SIGTERM (what systemd, Kubernetes and `docker stop` send).
struct Signals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self, Failure> {
        Ok(Self {
            #[cfg(unix)]
            terminate: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .or_else(|e| fail(format!("cannot listen for SIGTERM: {e}")))?,
        })
    }

    /// The next SIGINT or SIGTERM.
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
