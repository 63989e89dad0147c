//! Where results, logs and progress go: results on stdout (text or `--json`),
//! everything else on stderr so `--json` output stays parseable.

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tracing_subscriber::EnvFilter;

/// Sends logs to stderr at a level chosen by `-v` (or `RUST_LOG`).
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// How a command reports its result.
pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Prints `value` as JSON with `--json`, else the human `text`.
    pub fn result<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).expect("results serialize")
            );
        } else {
            println!("{}", text());
        }
    }

    /// A progress bar on stderr for `len` units of work (`bytes` formats them
    /// as sizes); hidden when stderr is not a terminal.
    #[allow(dead_code)]
    pub fn progress(&self, len: u64, bytes: bool, msg: &str) -> ProgressBar {
        let bar = ProgressBar::new(len);
        let template = if bytes {
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}"
        } else {
            "{msg} [{bar:30}] {pos}/{len} {eta}"
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_message(msg.to_string());
        bar
    }
}
