//! Standard output as the data verbs write it: a write after the reader went away (`pull x - |
//! head`) fails with [`CLOSED`] in its message, which the binary turns into a quiet exit (status
//! 141), never to be confused with a storage connection's broken pipe.

use std::io::{self, Write};

/// The text of the error a write to a closed standard output gives.
pub const CLOSED: &str = "standard output was closed by its reader";

/// Standard output, with the closed-reader error marked.
pub fn stdout() -> Stdout {
    Stdout(io::stdout())
}

pub struct Stdout(io::Stdout);

fn mark(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::BrokenPipe => io::Error::new(io::ErrorKind::BrokenPipe, CLOSED),
        _ => e,
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(mark)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(mark)
    }
}
