//! Progress bars on long work, drawn only when stderr is a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::Globals;

/// Whether a progress bar would be drawn: stderr is a terminal and `-q`
/// was not given. Work done only to size a bar is skipped otherwise.
pub(crate) fn shown(globals: Globals) -> bool {
    !globals.quiet && std::io::stderr().is_terminal()
}

/// A progress bar over `len` steps that draws on stderr only when stderr is
/// a terminal and `-q` was not given; otherwise every call on it is a no-op.
pub(crate) fn bar(len: u64, globals: Globals) -> ProgressBar {
    let visible = shown(globals);
    let target = if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}",
    ) {
        bar.set_style(style);
    }
    if visible {
        bar.enable_steady_tick(Duration::from_millis(120));
    }
    bar
}

/// A progress bar over `len` bytes, drawn as [`bar`] is: bytes done, total
/// and rate.
pub(crate) fn bytes_bar(len: u64, globals: Globals) -> ProgressBar {
    let bar = bar(len, globals);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// A progress counter of bytes done, for work whose total is not known in
/// advance (a walk that streams): bytes and elapsed time, drawn as [`bar`]
/// is.
pub(crate) fn bytes(globals: Globals) -> ProgressBar {
    let bar = bar(0, globals);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bytes} {wide_msg}")
    {
        bar.set_style(style);
    }
    bar.set_length(u64::MAX);
    bar
}
