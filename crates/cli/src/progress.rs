//! A progress bar on an interactive terminal; nothing at all when stderr is not a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    pub counter: Option<Arc<AtomicU64>>,
    bar: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// `total`: known input size, if any.
    pub fn start(label: &str, total: Option<u64>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress {
                counter: None,
                bar: None,
                ticker: None,
            };
        }
        let counter = Arc::new(AtomicU64::new(0));
        let bar = match total {
            Some(t) => ProgressBar::new(t).with_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.set_message(label.to_string());
        let (b, c) = (bar.clone(), counter.clone());
        let ticker = tokio::spawn(async move {
            loop {
                b.set_position(c.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Progress {
            counter: Some(counter),
            bar: Some(bar),
            ticker: Some(ticker),
        }
    }

    /// Run `work` with a progress display fed by the counter it is given.
    pub async fn track<T, Fut: std::future::Future<Output = T>>(
        label: &str,
        total: Option<u64>,
        work: impl FnOnce(Option<Arc<AtomicU64>>) -> Fut,
    ) -> T {
        let progress = Progress::start(label, total);
        let out = work(progress.counter.clone()).await;
        progress.finish();
        out
    }

    pub fn finish(self) {
        if let Some(t) = self.ticker {
            t.abort();
        }
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
