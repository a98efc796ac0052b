//! Primitive readers and writers for Kafka's generated-message encoding
//! (big-endian integers, `int16`-length strings, `int32`-length bytes and
//! arrays, and for flexible versions the compact unsigned-varint lengths
//! and tagged-field sections).
//!
//! kafka-protocol keeps its own encoders crate-private, and it has no types
//! for the `__consumer_offsets` schemas, so this small module carries just
//! what the `__consumer_offsets` schemas need. Every read is bounds-checked: a record read
//! back from disk is input, and bad input is an error value, never a panic.

use bytes::{BufMut, Bytes};

use super::RecordError;

/// Appends encoded fields to a byte vector.
pub(crate) struct Writer {
    buf: Vec<u8>,
    flexible: bool,
}

impl Writer {
    pub(crate) fn new(flexible: bool) -> Self {
        Writer {
            buf: Vec::with_capacity(64),
            flexible,
        }
    }

    pub(crate) fn finish(self) -> Bytes {
        Bytes::from(self.buf)
    }

    pub(crate) fn i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    pub(crate) fn i8(&mut self, v: i8) {
        self.buf.put_i8(v);
    }

    /// A UUID: 16 bytes, most significant half first (Java's `Uuid`).
    pub(crate) fn uuid(&mut self, v: &uuid::Uuid) {
        self.buf.put_slice(v.as_bytes());
    }

    fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    /// Writes a length prefix: `int16`/`int32` for non-flexible versions
    /// (`-1` for null), `uvarint(len + 1)` for flexible ones (0 for null).
    fn len_prefix(&mut self, len: Option<usize>, wide: bool) {
        if self.flexible {
            self.uvarint(len.map_or(0, |n| n as u64 + 1));
        } else if wide {
            self.i32(len.map_or(-1, |n| i32::try_from(n).expect("field over 2 GiB")));
        } else {
            self.i16(len.map_or(-1, |n| i16::try_from(n).expect("string over 32 KiB")));
        }
    }

    pub(crate) fn string(&mut self, s: &str) {
        self.nullable_string(Some(s));
    }

    pub(crate) fn nullable_string(&mut self, s: Option<&str>) {
        self.len_prefix(s.map(str::len), false);
        if let Some(s) = s {
            self.buf.put_slice(s.as_bytes());
        }
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.len_prefix(Some(b.len()), true);
        self.buf.put_slice(b);
    }

    pub(crate) fn array_len(&mut self, n: usize) {
        self.len_prefix(Some(n), true);
    }

    /// An empty tagged-field section (flexible versions only).
    pub(crate) fn tagged_fields(&mut self) {
        if self.flexible {
            self.uvarint(0);
        }
    }

    /// A tagged-field section holding `fields` (tag, encoded value), in
    /// ascending tag order as Kafka requires.
    pub(crate) fn tagged_fields_with(&mut self, fields: &[(u32, Bytes)]) {
        debug_assert!(
            self.flexible,
            "tagged fields exist only in flexible versions"
        );
        debug_assert!(fields.windows(2).all(|w| w[0].0 < w[1].0), "tags ascending");
        self.uvarint(fields.len() as u64);
        for (tag, value) in fields {
            self.uvarint(u64::from(*tag));
            self.uvarint(value.len() as u64);
            self.buf.put_slice(value);
        }
    }
}

/// Reads encoded fields from a byte slice.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    flexible: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], flexible: bool) -> Self {
        Reader { buf, flexible }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.buf.len() < n {
            return Err(RecordError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    pub(crate) fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(self.take(1)?[0] as i8)
    }

    pub(crate) fn uuid(&mut self) -> Result<uuid::Uuid, RecordError> {
        Ok(uuid::Uuid::from_bytes(
            self.take(16)?.try_into().expect("16 bytes"),
        ))
    }

    fn uvarint(&mut self) -> Result<u64, RecordError> {
        let mut v: u64 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RecordError::Malformed("varint longer than 5 bytes"))
    }

    /// Reads a length prefix; `None` means null.
    fn len_prefix(&mut self, wide: bool) -> Result<Option<usize>, RecordError> {
        let n: i64 = if self.flexible {
            self.uvarint()? as i64 - 1
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        match n {
            -1 => Ok(None),
            n if n < -1 => Err(RecordError::Malformed("negative length")),
            n => Ok(Some(n as usize)),
        }
    }

    pub(crate) fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        match self.len_prefix(false)? {
            None => Ok(None),
            Some(n) => {
                let raw = self.take(n)?;
                let s = std::str::from_utf8(raw)
                    .map_err(|_| RecordError::Malformed("invalid UTF-8"))?;
                Ok(Some(s.to_owned()))
            }
        }
    }

    pub(crate) fn string(&mut self) -> Result<String, RecordError> {
        self.nullable_string()?
            .ok_or(RecordError::Malformed("null in a non-nullable string"))
    }

    pub(crate) fn bytes(&mut self) -> Result<Bytes, RecordError> {
        match self.len_prefix(true)? {
            None => Err(RecordError::Malformed("null in non-nullable bytes")),
            Some(n) => Ok(Bytes::copy_from_slice(self.take(n)?)),
        }
    }

    pub(crate) fn array_len(&mut self) -> Result<usize, RecordError> {
        let n = self
            .len_prefix(true)?
            .ok_or(RecordError::Malformed("null in a non-nullable array"))?;
        // Each element takes at least one byte; refuse counts that cannot fit
        // so a corrupt count cannot make us reserve gigabytes.
        if n > self.buf.len() {
            return Err(RecordError::Truncated);
        }
        Ok(n)
    }

    /// Skips a tagged-field section (flexible versions only).
    pub(crate) fn tagged_fields(&mut self) -> Result<(), RecordError> {
        self.tagged_field_values().map(drop)
    }

    /// Reads a tagged-field section, returning each (tag, raw value); the
    /// caller decodes the tags it knows and ignores the rest.
    pub(crate) fn tagged_field_values(&mut self) -> Result<Vec<(u64, &'a [u8])>, RecordError> {
        if !self.flexible {
            return Ok(vec![]);
        }
        let count = self.uvarint()?;
        let mut fields = Vec::new();
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = self.uvarint()?;
            let size = usize::try_from(size).map_err(|_| RecordError::Truncated)?;
            fields.push((tag, self.take(size)?));
        }
        Ok(fields)
    }

    /// Whether every byte has been read.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}
