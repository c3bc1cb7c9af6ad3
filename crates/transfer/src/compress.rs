//! Compression filters with datasafed's algorithm names (its `-z`/`-d` values).
//!
//! Objects hold the bare stream of each format, as datasafed stores them (it drops kopia's
//! 4-byte compressor header): gzip/pgzip → gzip members, deflate → raw DEFLATE, zstd → zstd
//! frames, lz4 → LZ4 frame. The name is not recorded in the object: the reader passes the same
//! `-d`. `pgzip` is written by one thread here (the output is ordinary gzip, which pgzip reads).
//! `s2-*` (klauspost's S2) has no maintained Rust implementation, so it is refused clearly.

use std::io::{self, Read, Write};

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Gzip(u32),
    Deflate(u32),
    Zstd(i32),
    Lz4,
}

/// Every name datasafed accepts, in its help order.
pub const NAMES: &[&str] = &[
    "deflate-best-compression",
    "deflate-best-speed",
    "deflate-default",
    "gzip",
    "gzip-best-compression",
    "gzip-best-speed",
    "lz4",
    "pgzip",
    "pgzip-best-compression",
    "pgzip-best-speed",
    "s2-better",
    "s2-default",
    "s2-parallel-4",
    "s2-parallel-8",
    "zstd",
    "zstd-best-compression",
    "zstd-better-compression",
    "zstd-fastest",
];

impl Codec {
    pub fn parse(name: &str) -> Result<Codec> {
        Ok(match name {
            "deflate-best-compression" => Codec::Deflate(9),
            "deflate-best-speed" => Codec::Deflate(1),
            "deflate-default" => Codec::Deflate(6),
            "gzip" | "pgzip" => Codec::Gzip(6),
            "gzip-best-compression" | "pgzip-best-compression" => Codec::Gzip(9),
            "gzip-best-speed" | "pgzip-best-speed" => Codec::Gzip(1),
            "lz4" => Codec::Lz4,
            // klauspost/zstd speed levels mapped to the nearest libzstd levels.
            "zstd" => Codec::Zstd(3),
            "zstd-fastest" => Codec::Zstd(1),
            "zstd-better-compression" => Codec::Zstd(7),
            "zstd-best-compression" => Codec::Zstd(11),
            s if s.starts_with("s2-") && NAMES.contains(&s) => {
                return Err(Error::Unsupported(format!(
                    "compression {s:?} (S2) is not supported: no maintained Rust library reads and writes S2 streams; use zstd, lz4, gzip or deflate"
                )))
            }
            other => {
                return Err(Error::Config(format!("{other} is not included in {}", NAMES.join(","))))
            }
        })
    }
}

/// A byte sink that must be finished to flush trailers (compression footers, cipher tags,
/// the last multipart part). Layers own their inner sink and finish it after themselves.
pub trait Sink: Write + Send {
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// A sink that keeps everything written, for in-memory transforms and tests. Clones share the
/// buffer, so one clone can be handed to a filter chain and the other read afterwards.
#[derive(Clone, Default)]
pub struct MemorySink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl MemorySink {
    pub fn contents(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|v| v.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

impl Write for MemorySink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("memory sink poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for MemorySink {
    fn finish(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }
}

struct GzipSink(flate2::write::GzEncoder<Box<dyn Sink>>);
struct DeflateSink(flate2::write::DeflateEncoder<Box<dyn Sink>>);
struct ZstdSink(zstd::stream::write::Encoder<'static, Box<dyn Sink>>);
struct Lz4Sink(lz4_flex::frame::FrameEncoder<Box<dyn Sink>>);

macro_rules! delegate_write {
    ($t:ty) => {
        impl Write for $t {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                self.0.flush()
            }
        }
    };
}
delegate_write!(GzipSink);
delegate_write!(DeflateSink);
delegate_write!(ZstdSink);
delegate_write!(Lz4Sink);

impl Sink for GzipSink {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.finish()
    }
}
impl Sink for DeflateSink {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.finish()
    }
}
impl Sink for ZstdSink {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.finish()
    }
}
impl Sink for Lz4Sink {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish().map_err(io::Error::other)?.finish()
    }
}

/// zstd worker threads for a push: one per core beyond two (the reading/encrypting thread and
/// the uploads), at most 4; none on one or two cores, where a worker was measured slower
/// (2.58 s against 2.43 s for 512 MiB of SQL at level 3) and its buffers cost 33 MiB of RSS.
/// `BACKUPREPO_ZSTD_WORKERS` overrides.
fn zstd_workers() -> u32 {
    if let Some(n) = std::env::var("BACKUPREPO_ZSTD_WORKERS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return n;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_sub(2).min(4) as u32
}

/// Wrap `inner` so that what is written is compressed with `codec`.
pub fn encoder(codec: Codec, inner: Box<dyn Sink>) -> io::Result<Box<dyn Sink>> {
    use flate2::Compression;
    Ok(match codec {
        Codec::Gzip(l) => Box::new(GzipSink(flate2::write::GzEncoder::new(
            inner,
            Compression::new(l),
        ))),
        Codec::Deflate(l) => Box::new(DeflateSink(flate2::write::DeflateEncoder::new(
            inner,
            Compression::new(l),
        ))),
        Codec::Zstd(l) => {
            let mut enc = zstd::stream::write::Encoder::new(inner, l)?;
            // zstd's own worker threads compress while this thread reads and encrypts, so
            // compressing is not what limits a push where another core is free. The output is
            // the same standard frame format.
            let workers = zstd_workers();
            if workers > 0 {
                enc.multithread(workers)?;
            }
            Box::new(ZstdSink(enc))
        }
        Codec::Lz4 => Box::new(Lz4Sink(lz4_flex::frame::FrameEncoder::with_frame_info(
            lz4_flex::frame::FrameInfo::new().content_checksum(true),
            inner,
        ))),
    })
}

/// Wrap `inner` so that reading yields the decompressed stream. A stream that ends before its
/// format says it is complete is an error, never a silent short read.
pub fn decoder(codec: Codec, inner: Box<dyn Read + Send>) -> io::Result<Box<dyn Read + Send>> {
    Ok(match codec {
        Codec::Gzip(_) => Box::new(flate2::read::MultiGzDecoder::new(inner)),
        Codec::Deflate(_) => Box::new(RawInflate {
            inner: io::BufReader::with_capacity(64 * 1024, inner),
            z: flate2::Decompress::new(false),
            done: false,
        }),
        Codec::Zstd(_) => Box::new(zstd::stream::read::Decoder::new(inner)?),
        Codec::Lz4 => Box::new(Lz4EndCheck {
            dec: lz4_flex::frame::FrameDecoder::new(Tail {
                inner,
                first: Vec::new(),
                last: Vec::new(),
            }),
        }),
    })
}

/// Remembers the first and last bytes that pass through, so the end of an LZ4 frame can be
/// checked after the decoder reports EOF.
struct Tail {
    inner: Box<dyn Read + Send>,
    first: Vec<u8>,
    last: Vec<u8>,
}

impl Read for Tail {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.first.len() < 5 {
            let take = (5 - self.first.len()).min(n);
            self.first.extend_from_slice(&buf[..take]);
        }
        self.last.extend_from_slice(&buf[..n]);
        if self.last.len() > 8 {
            self.last.drain(..self.last.len() - 8);
        }
        Ok(n)
    }
}

/// lz4_flex treats a frame cut inside its end mark as a clean end; we check that the stream
/// ended with the end mark (four zero bytes, then the content checksum when the frame has one).
struct Lz4EndCheck {
    dec: lz4_flex::frame::FrameDecoder<Tail>,
}

impl Read for Lz4EndCheck {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.dec.read(buf).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("corrupt lz4 stream: {e}"),
            )
        })?;
        if n == 0 && !buf.is_empty() {
            let t = self.dec.get_ref();
            let has_checksum = t.first.len() >= 5 && t.first[4] & 0x04 != 0;
            let need = if has_checksum { 8 } else { 4 };
            let ok = t.last.len() >= need
                && t.last[t.last.len() - need..t.last.len() - need + 4] == [0, 0, 0, 0];
            if !ok {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "lz4 stream is truncated (its end mark is missing)",
                ));
            }
        }
        Ok(n)
    }
}

/// Raw DEFLATE has no trailer, and flate2's reader reports a stream cut short as a plain EOF.
/// This reader drives zlib directly and only ends at `StreamEnd` (the final block), so a
/// truncated object is an error, never a silent short read.
struct RawInflate<R: io::BufRead> {
    inner: R,
    z: flate2::Decompress,
    done: bool,
}

impl<R: io::BufRead> Read for RawInflate<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use flate2::{FlushDecompress, Status};
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        loop {
            let input = self.inner.fill_buf()?;
            let eof = input.is_empty();
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let flush = if eof {
                FlushDecompress::Finish
            } else {
                FlushDecompress::None
            };
            let status = self.z.decompress(input, buf, flush).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("corrupt deflate stream: {e}"),
                )
            })?;
            let consumed = (self.z.total_in() - in0) as usize;
            let produced = (self.z.total_out() - out0) as usize;
            self.inner.consume(consumed);
            if status == Status::StreamEnd {
                self.done = true;
                return Ok(produced);
            }
            if produced > 0 {
                return Ok(produced);
            }
            if eof {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "deflate stream is truncated (its final block is missing)",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(codec: Codec, data: &[u8]) -> Vec<u8> {
        let c = MemorySink::default();
        let mut e = encoder(codec, Box::new(c.clone())).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap();
        c.contents()
    }

    fn decompress(codec: Codec, data: Vec<u8>) -> io::Result<Vec<u8>> {
        let mut d = decoder(codec, Box::new(io::Cursor::new(data)))?;
        let mut out = Vec::new();
        d.read_to_end(&mut out)?;
        Ok(out)
    }

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| format!("INSERT INTO t VALUES ({i}, 'row {i}');\n").into_bytes())
            .collect()
    }

    #[test]
    fn every_name_round_trips_or_is_refused() {
        let data = sample();
        for name in NAMES {
            match Codec::parse(name) {
                Ok(codec) => {
                    let z = compress(codec, &data);
                    assert!(z.len() < data.len() / 3, "{name} did not compress");
                    assert_eq!(decompress(codec, z).unwrap(), data, "{name}");
                }
                Err(e) => {
                    assert!(name.starts_with("s2-"), "{name}: {e}");
                    assert!(e.to_string().contains("not supported"));
                }
            }
        }
        assert!(Codec::parse("brotli")
            .unwrap_err()
            .to_string()
            .contains("is not included in"));
    }

    #[test]
    fn formats_are_the_bare_streams() {
        let z = compress(Codec::Gzip(6), b"x");
        assert_eq!(&z[..2], &[0x1f, 0x8b]);
        let z = compress(Codec::Zstd(3), b"x");
        assert_eq!(&z[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        let z = compress(Codec::Lz4, b"x");
        assert_eq!(&z[..4], &[0x04, 0x22, 0x4d, 0x18]);
    }

    #[test]
    fn truncated_streams_fail() {
        let data = sample();
        for codec in [
            Codec::Gzip(6),
            Codec::Deflate(6),
            Codec::Zstd(3),
            Codec::Lz4,
        ] {
            let z = compress(codec, &data);
            for cut in [z.len() / 2, z.len() - 1] {
                let r = decompress(codec, z[..cut].to_vec());
                assert!(
                    r.is_err(),
                    "{codec:?} cut at {cut}/{} decoded silently",
                    z.len()
                );
            }
        }
    }
}
