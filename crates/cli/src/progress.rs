//! Progress bars drawn on stderr: one style for every long step, and LSTM training with its
//! bar (the one way the CLI trains a model: `foresight train`, `forecast eval`, `experiment`).

use foresight_forecast::lstm::Progress;
use foresight_forecast::{Dataset, Lstm, LstmConfig};
use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps in `template` (indicatif's), hidden when `quiet`.
pub fn bar(quiet: bool, len: u64, template: &str) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len)
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Trains the LSTM on `ds` (see [`Dataset::train_lstm`]), showing epochs, loss and an
/// estimate of the time left.
pub fn train_lstm(ds: &Dataset, cfg: &LstmConfig, quiet: bool) -> Result<Lstm, String> {
    let training = Training::new(quiet);
    let model = ds
        .train_lstm(cfg, |p| training.update(p))
        .map_err(|e| e.to_string())?;
    training.finish();
    Ok(model)
}

/// LSTM training's progress: a bar with epochs, loss and the time left.
pub struct Training(ProgressBar);

impl Training {
    /// A bar, hidden when `quiet`.
    pub fn new(quiet: bool) -> Training {
        Training(bar(
            quiet,
            1,
            "training lstm [{bar:30}] {percent:>3}% {elapsed} eta {eta} {msg}",
        ))
    }

    /// After every batch.
    pub fn update(&self, p: Progress) {
        self.0.set_length((p.epochs * p.batches) as u64);
        self.0
            .set_position(((p.epoch - 1) * p.batches + p.batch) as u64);
        if p.batch.is_multiple_of(16) || p.batch == p.batches {
            self.0.set_message(format!(
                "epoch {}/{} loss {:.5} best val {:.5}",
                p.epoch, p.epochs, p.train_loss, p.best_val_loss
            ));
        }
    }

    /// Clears the bar.
    pub fn finish(self) {
        self.0.finish_and_clear();
    }
}
