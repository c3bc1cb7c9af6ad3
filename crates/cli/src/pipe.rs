//! A reader that goes away (`backuprepo list -o json | head -c1`, `pull x - | head`) ends the
//! command quietly, with status 141 (128 + SIGPIPE), as shells report a writer that a closed
//! pipe stopped: no stack trace, no error message.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe is an error (`print!` turns it into a
//! panic). Restoring the signal's default action needs `libc` and `unsafe`, which this crate
//! forbids; both forms are recognised here instead.

use std::process::ExitCode;

/// The status of a command whose reader went away.
pub const CLOSED_PIPE: u8 = 141;

/// Make a `print!` to a closed stdout exit with [`CLOSED_PIPE`] instead of panicking (std's
/// message for it: "failed printing to stdout: Broken pipe (os error 32)").
pub fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if msg.starts_with("failed printing to stdout")
            && (msg.contains("Broken pipe") || msg.contains("os error 32"))
        {
            std::process::exit(i32::from(CLOSED_PIPE));
        }
        default(info);
    }));
}

/// The exit of a command that failed with `error` (its full text): quiet with
/// [`CLOSED_PIPE`] when its standard output's reader went away (the data verbs mark that
/// error, see [`backuprepo_transfer::stdout`]), else the message on stderr and status 1.
pub fn failure(error: &str) -> ExitCode {
    if error.contains(backuprepo_transfer::stdout::CLOSED) {
        return ExitCode::from(CLOSED_PIPE);
    }
    eprintln!("Error: {error}");
    ExitCode::FAILURE
}
