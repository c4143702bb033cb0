//! Little helpers for Rhizome's own binary encodings (segment directories, dictionaries).
//!
//! Encodings used by [`ByteWriter`] and read back by [`ByteReader`]:
//!
//! ```text
//! u8          1 byte
//! u32 / u64   4 / 8 bytes, little-endian
//! i64         8 bytes, little-endian two's complement
//! varint      LEB128 of a u64: 7 bits per byte, low groups first, high bit = "more follows";
//!             1..=10 bytes, the 10th byte may only hold the top bit of the u64
//! bytes       varint length, then that many bytes
//! str         bytes holding UTF-8
//! ```
//!
//! Every read that runs past the end, an overlong varint or invalid UTF-8 is an
//! [`Error::Corruption`] naming the block being decoded, never a panic.

use crate::error::{Error, Result};

/// Longest LEB128 encoding of a u64: ⌈64 / 7⌉ bytes.
pub const VARINT_BYTES_MAX: usize = 10;
/// Payload bits per varint byte.
const VARINT_PAYLOAD_BITS: u32 = 7;
const VARINT_PAYLOAD_MASK: u8 = 0x7f;
const VARINT_CONTINUATION_BIT: u8 = 0x80;

/// Appends encoded values to a growing byte buffer.
#[derive(Debug, Clone, Default)]
pub struct ByteWriter {
    /// The encoded bytes so far.
    buffer: Vec<u8>,
}

impl ByteWriter {
    pub fn new() -> Self {
        ByteWriter { buffer: Vec::new() }
    }

    /// A writer whose buffer starts with room for `bytes_capacity` bytes.
    pub fn with_capacity(bytes_capacity: usize) -> Self {
        ByteWriter {
            buffer: Vec::with_capacity(bytes_capacity),
        }
    }

    pub fn put_u8(&mut self, value: u8) {
        self.buffer.push(value);
    }

    pub fn put_u32(&mut self, value: u32) {
        self.buffer.extend_from_slice(&value.to_le_bytes());
    }

    pub fn put_u64(&mut self, value: u64) {
        self.buffer.extend_from_slice(&value.to_le_bytes());
    }

    pub fn put_i64(&mut self, value: i64) {
        self.buffer.extend_from_slice(&value.to_le_bytes());
    }

    /// LEB128: 1 byte below 128, at most [`VARINT_BYTES_MAX`] bytes.
    pub fn put_varint(&mut self, mut value: u64) {
        while value >= u64::from(VARINT_CONTINUATION_BIT) {
            self.buffer
                .push((value as u8 & VARINT_PAYLOAD_MASK) | VARINT_CONTINUATION_BIT);
            value >>= VARINT_PAYLOAD_BITS;
        }
        self.buffer.push(value as u8);
    }

    /// A varint length, then the bytes.
    pub fn put_bytes(&mut self, bytes: &[u8]) {
        self.put_varint(bytes.len() as u64);
        self.buffer.extend_from_slice(bytes);
    }

    /// A string as [`ByteWriter::put_bytes`] of its UTF-8.
    pub fn put_str(&mut self, text: &str) {
        self.put_bytes(text.as_bytes());
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buffer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buffer.is_empty()
    }

    /// The bytes written so far, without giving them up.
    pub fn as_slice(&self) -> &[u8] {
        &self.buffer
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.buffer
    }
}

/// Reads encoded values from a byte slice, front to back.
#[derive(Debug, Clone)]
pub struct ByteReader<'a> {
    /// The whole encoded buffer.
    bytes: &'a [u8],
    /// Offset of the next unread byte.
    position: usize,
    /// The block being decoded, named in corruption errors.
    block: &'a str,
}

impl<'a> ByteReader<'a> {
    /// A reader over `bytes`; errors name `block`.
    pub fn new(bytes: &'a [u8], block: &'a str) -> Self {
        ByteReader {
            bytes,
            position: 0,
            block,
        }
    }

    /// A corruption error in this reader's block, saying where it was found.
    pub fn corruption(&self, reason: impl std::fmt::Display) -> Error {
        Error::corrupt(self.block, format!("{reason} (at byte {})", self.position))
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Offset of the next unread byte.
    pub fn position(&self) -> usize {
        self.position
    }

    /// An error unless every byte has been read: trailing garbage is corruption too.
    pub fn expect_end(&self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.corruption(format!("{} unexpected trailing bytes", self.remaining())))
        }
    }

    /// The next `count` bytes, checked against what remains before slicing.
    fn take(&mut self, count: usize) -> Result<&'a [u8]> {
        if count > self.remaining() {
            return Err(self.corruption(format!(
                "needs {count} bytes but only {} remain",
                self.remaining()
            )));
        }
        let start = self.position;
        self.position += count;
        Ok(&self.bytes[start..self.position])
    }

    /// The next `N` bytes as an array.
    fn take_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut array = [0_u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take_array::<1>()?[0])
    }

    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take_array()?))
    }

    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take_array()?))
    }

    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.take_array()?))
    }

    /// A LEB128 u64; more than [`VARINT_BYTES_MAX`] bytes or bits beyond 64 are corruption.
    pub fn varint(&mut self) -> Result<u64> {
        let start = self.position;
        let mut value: u64 = 0;
        for index in 0..VARINT_BYTES_MAX {
            let byte = self.u8()?;
            let payload = u64::from(byte & VARINT_PAYLOAD_MASK);
            let shift = index as u32 * VARINT_PAYLOAD_BITS;
            if index == VARINT_BYTES_MAX - 1 && payload > 1 {
                self.position = start;
                return Err(self.corruption("varint overflows 64 bits"));
            }
            value |= payload << shift;
            if byte & VARINT_CONTINUATION_BIT == 0 {
                return Ok(value);
            }
        }
        self.position = start;
        Err(self.corruption(format!("varint longer than {VARINT_BYTES_MAX} bytes")))
    }

    /// A varint length then that many bytes; a length beyond what remains is corruption.
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let length = self.varint()?;
        match usize::try_from(length) {
            Ok(length) if length <= self.remaining() => self.take(length),
            _ => Err(self.corruption(format!(
                "declared length {length} exceeds the {} remaining bytes",
                self.remaining()
            ))),
        }
    }

    /// [`ByteReader::bytes`] holding UTF-8.
    pub fn str(&mut self) -> Result<&'a str> {
        let start = self.position;
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes).map_err(|e| {
            self.position = start;
            self.corruption(format!("invalid UTF-8 in string: {e}"))
        })
    }
}
