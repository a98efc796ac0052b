//! Walking the batches of a `.log` file through a reusable read buffer.
//!
//! Both recovery (which checks every CRC) and the read path (which needs
//! only headers to find batch boundaries) walk batches; reading the file in
//! chunks keeps that to a few large `pread`s instead of one per batch.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use odradek_protocol::batch::{self, field, BatchError, BatchHeader, BATCH_HEADER_LEN};

/// What lies at a position of a `.log` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scanned {
    /// The position is the end of the readable range.
    End,
    /// A batch starts here and fits within the readable range.
    Batch(BatchHeader),
    /// The bytes here are not a complete, valid batch.
    Invalid(BatchError),
}

pub(crate) struct BatchReader<'f> {
    file: &'f File,
    /// Bytes `[0, end)` of the file may be read.
    end: u64,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_start: u64,
    chunk: usize,
}

impl<'f> BatchReader<'f> {
    pub(crate) fn new(file: &'f File, end: u64, chunk: usize) -> Self {
        BatchReader {
            file,
            end,
            buf: Vec::new(),
            buf_start: 0,
            chunk,
        }
    }

    /// Bytes `[pos, pos + len)`, which must lie below `end`.
    fn load(&mut self, pos: u64, len: usize) -> io::Result<&[u8]> {
        let cached =
            pos >= self.buf_start && pos + len as u64 <= self.buf_start + self.buf.len() as u64;
        if !cached {
            let want = (len.max(self.chunk) as u64).min(self.end - pos) as usize;
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.buf_start = pos;
        }
        let from = (pos - self.buf_start) as usize;
        Ok(&self.buf[from..from + len])
    }

    /// Parses the header at `pos` and checks that the batch is plausible
    /// and lies within the readable range. No CRC check.
    pub(crate) fn header_at(&mut self, pos: u64) -> io::Result<Scanned> {
        if pos >= self.end {
            return Ok(Scanned::End);
        }
        let available = self.end - pos;
        let n = (BATCH_HEADER_LEN as u64).min(available) as usize;
        let header = match BatchHeader::parse(self.load(pos, n)?) {
            Ok(h) => h,
            Err(e) => return Ok(Scanned::Invalid(e)),
        };
        if let Err(e) = batch::check_header(&header) {
            return Ok(Scanned::Invalid(e));
        }
        if header.total_len() as u64 > available {
            return Ok(Scanned::Invalid(BatchError::Truncated {
                needed: header.total_len(),
                available: available as usize,
            }));
        }
        Ok(Scanned::Batch(header))
    }

    /// Like `header_at`, and also verifies the CRC32C, streaming the batch
    /// through the buffer so a huge (or garbage) length costs no memory.
    pub(crate) fn checked_batch_at(&mut self, pos: u64) -> io::Result<Scanned> {
        let header = match self.header_at(pos)? {
            Scanned::Batch(h) => h,
            other => return Ok(other),
        };
        let mut crc = 0;
        let mut at = pos + field::ATTRIBUTES as u64;
        let end = pos + header.total_len() as u64;
        while at < end {
            let n = ((end - at) as usize).min(self.chunk);
            crc = crc32c::crc32c_append(crc, self.load(at, n)?);
            at += n as u64;
        }
        if crc != header.crc {
            return Ok(Scanned::Invalid(BatchError::CrcMismatch {
                expected: header.crc,
                actual: crc,
            }));
        }
        Ok(Scanned::Batch(header))
    }

    /// The whole batch at `pos` (whose header was already read).
    pub(crate) fn batch_bytes(&mut self, pos: u64, header: &BatchHeader) -> io::Result<&[u8]> {
        self.load(pos, header.total_len())
    }
}
