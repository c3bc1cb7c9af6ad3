//! Why a path cannot be read as asked, in words a user can act on: a path that is stored
//! encrypted while no encryption is set (or the other way round), a file asked for as a
//! directory (or the other way round), an object that is not in the compression asked for.
//! Each looks only after a read failed, so the common path costs nothing.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use super::Storage;
use crate::compress::Codec;
use crate::crypto::SUFFIX;
use crate::paths;
use crate::pipeline::Filters;
use crate::Result;

/// What is at one key: nothing, an object, or a directory (a prefix on object stores).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Nothing,
    Object,
    Directory,
}

impl Storage {
    /// The size a pull of `rpath` writes (before decompression), when an object is stored
    /// there as this storage would store a push (with `.enc` when encryption is set); `None`
    /// when there is none. `push --no-clobber` asks this before it writes, and the pull
    /// progress bar for its total.
    pub async fn object_size(&self, rpath: &str) -> Result<Option<u64>> {
        let remote = paths::resolve_file(&self.base, rpath)?;
        Ok(self.probe_object(&remote).await?.map(|e| e.size))
    }

    /// The stored bytes of the object `rpath` names (`.enc` when encryption is set), as the
    /// usage measurement counts them; `None` when there is none.
    pub async fn stored_size(&self, rpath: &str) -> Result<Option<u64>> {
        let remote = paths::resolve_file(&self.base, rpath)?;
        match self.op.stat(&self.stored_key(&remote.key)).await {
            Ok(m) if !m.is_dir() => Ok(Some(m.content_length())),
            Ok(_) => Ok(None),
            Err(e) if crate::diagnose::is_gone(&e) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn found(&self, key: &str) -> Found {
        if key.is_empty() {
            return Found::Directory;
        }
        if matches!(self.op.stat(key).await, Ok(m) if !m.is_dir()) {
            return Found::Object;
        }
        let dir = format!("{}/", key.trim_end_matches('/'));
        let mut any = false;
        let _ = self.walk(&dir, false, None, &mut |_| any = true).await;
        if any || matches!(self.dir_exists(&dir).await, Ok(true)) {
            return Found::Directory;
        }
        Found::Nothing
    }

    /// Why nothing readable was found at `rpath` (after a read said "not found"): the sentence
    /// to append to the error. A trailing `/` means the caller wanted a directory.
    pub async fn explain_missing(&self, rpath: &str) -> String {
        let Ok(remote) = paths::resolve(&self.base, rpath) else {
            return String::new();
        };
        let shown = rpath.trim_end_matches('/');
        let key = remote.key.trim_end_matches('/');
        match &self.encryption {
            None if self.found(&format!("{key}{SUFFIX}")).await == Found::Object => {
                return format!(
                    "{shown:?} is stored encrypted ({shown}{SUFFIX}): set DATASAFED_ENCRYPTION_ALGORITHM and DATASAFED_ENCRYPTION_PASS_PHRASE to what the push used"
                );
            }
            Some(_) if !key.is_empty() && self.found(key).await == Found::Object => {
                return format!(
                    "{shown:?} is stored without encryption (there is no {shown}{SUFFIX}): unset DATASAFED_ENCRYPTION_ALGORITHM to read it"
                );
            }
            _ => {}
        }
        let stored = self.stored_key(key);
        match (remote.dir, self.found(&stored).await) {
            (true, Found::Object) => {
                format!("{shown:?} is a file, not a directory: drop the trailing /")
            }
            (false, Found::Directory) => format!(
                "{shown:?} is a directory, not a file: see what it holds with `list {shown}/`"
            ),
            _ => format!("there is no file or directory {shown:?} in this repository"),
        }
    }

    /// Why the object at `rpath` did not decompress with `codec`: what its first bytes look
    /// like (after decryption), or `None` when they cannot be read either.
    pub async fn explain_codec(&self, rpath: &str, codec: Codec) -> Option<String> {
        let remote = paths::resolve_file(&self.base, rpath).ok()?;
        let key = self.stored_key(&remote.key);
        let head = Arc::new(Mutex::new(Vec::new()));
        let filters = Filters {
            codec: None,
            encryption: self.encryption.clone(),
        };
        // The head writer fails once it holds enough, which ends the read early.
        let _ = self
            .fetch(
                &key,
                Box::new(Head::new(head.clone(), 16, true)),
                filters,
                None,
                std::future::pending(),
            )
            .await;
        let head = head.lock().ok()?.clone();
        let sniffed = super::sniff(&head);
        // Empty, or in the asked-for format after all (then the object is damaged, which the
        // original error says).
        if head.is_empty() || sniffed.map(codec_name) == Some(codec_name(codec)) {
            return None;
        }
        Some(format!(
            "the object is not {} data: its first bytes {}; pull it with the -d the push used{}",
            codec_name(codec),
            describe_head(&head),
            match sniffed {
                Some(c) => format!(" (-d {})", codec_name(c)),
                None => ", or without -d".into(),
            }
        ))
    }
}

/// The compression's name, as `-d` takes it.
fn codec_name(c: Codec) -> &'static str {
    match c {
        Codec::Gzip(_) => "gzip",
        Codec::Deflate(_) => "deflate-default",
        Codec::Zstd(_) => "zstd",
        Codec::Lz4 => "lz4",
    }
}

/// "are gzip's magic number (1f 8b)", "look like text: \"1\\n2\\n\"", "are 00 01 02 ... (binary)".
pub(crate) fn describe_head(head: &[u8]) -> String {
    let hex = |b: &[u8]| {
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let magic = |name: &str, n: usize| format!("are {name}'s magic number ({})", hex(&head[..n]));
    // The compressions we read are recognised as `verify` recognises them.
    if let Some(c) = super::sniff(head) {
        return magic(
            codec_name(c),
            if matches!(c, Codec::Gzip(_)) { 2 } else { 4 },
        );
    }
    match head {
        [b'B', b'Z', b'h', ..] => magic("bzip2", 3),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => magic("xz", 6),
        _ => match std::str::from_utf8(head) {
            Ok(s) if s.chars().all(|c| !c.is_control() || c.is_whitespace()) => {
                format!("look like plain text: {s:?}")
            }
            _ => format!("are {} (neither text nor a known compression)", hex(head)),
        },
    }
}

/// Keeps the first `len` bytes written. With `stop`, fails once it has them, so a read ends
/// early; otherwise discards the rest (a full pass that must reach the end, as `verify`'s).
pub(super) struct Head {
    buf: Arc<Mutex<Vec<u8>>>,
    len: usize,
    stop: bool,
}

impl Head {
    pub(super) fn new(buf: Arc<Mutex<Vec<u8>>>, len: usize, stop: bool) -> Self {
        Head { buf, len, stop }
    }
}

impl Write for Head {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut h = self
            .buf
            .lock()
            .map_err(|_| io::Error::other("head buffer poisoned"))?;
        if self.stop && h.len() >= self.len {
            return Err(io::Error::other("enough"));
        }
        let room = self.len.saturating_sub(h.len());
        h.extend_from_slice(&buf[..room.min(buf.len())]);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::describe_head;

    #[test]
    fn heads_are_named() {
        assert!(describe_head(&[0x1f, 0x8b, 8, 0]).contains("gzip's magic number (1f 8b)"));
        assert!(describe_head(&[0x28, 0xb5, 0x2f, 0xfd, 0]).contains("zstd"));
        assert_eq!(
            describe_head(b"1\n2\n"),
            "look like plain text: \"1\\n2\\n\""
        );
        assert!(describe_head(&[0, 1, 2, 0xff]).contains("00 01 02 ff (neither text"));
    }
}
