//! A progress bar, and a one-line summary when the work is done, on an interactive terminal;
//! nothing at all when stderr is not a terminal (scripts and job logs stay as they were).

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
    /// Whether progress is shown (stderr is a terminal).
    pub fn shown() -> bool {
        std::io::stderr().is_terminal()
    }

    /// `total`: known input size, if any.
    pub fn start(label: &str, total: Option<u64>) -> Self {
        if !Self::shown() {
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

    /// [`Progress::track`] for a transfer that returns its bytes; when it succeeds, say
    /// `LABEL: SIZE in SECONDS (RATE)` on the terminal.
    pub async fn transfer<E, Fut: std::future::Future<Output = Result<u64, E>>>(
        label: &str,
        total: Option<u64>,
        work: impl FnOnce(Option<Arc<AtomicU64>>) -> Fut,
    ) -> Result<u64, E> {
        let started = std::time::Instant::now();
        let out = Self::track(label, total, work).await;
        if let (true, Ok(bytes)) = (Self::shown(), &out) {
            eprintln!("{}", summary(label, *bytes, started.elapsed()));
        }
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

/// `push a/f.sql: 1.5 MiB in 0.3 s (5.0 MiB/s)`.
fn summary(label: &str, bytes: u64, took: Duration) -> String {
    use indicatif::{BinaryBytes, HumanDuration};
    let secs = took.as_secs_f64().max(0.001);
    let rate = BinaryBytes((bytes as f64 / secs) as u64);
    let took = match took.as_secs() {
        0 => format!("{} ms", took.as_millis()),
        1..=59 => format!("{secs:.1} s"),
        _ => HumanDuration(took).to_string(),
    };
    format!("{label}: {} in {took} ({rate}/s)", BinaryBytes(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn summary_names_size_time_and_rate() {
        let s = super::summary("push a/f.sql", 3 << 20, std::time::Duration::from_secs(2));
        assert_eq!(s, "push a/f.sql: 3.00 MiB in 2.0 s (1.50 MiB/s)");
    }
}
