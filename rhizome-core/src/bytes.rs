//! TEMPORARY stand-in until the value branch lands.
use crate::{Error, Result};
#[derive(Debug, Default)]
pub struct ByteWriter(Vec<u8>);
impl ByteWriter {
    pub fn new() -> Self { Self::default() }
    pub fn put_u8(&mut self, v: u8) { self.0.push(v) }
    pub fn put_u32(&mut self, v: u32) { self.0.extend(v.to_le_bytes()) }
    pub fn put_u64(&mut self, v: u64) { self.0.extend(v.to_le_bytes()) }
    pub fn put_i64(&mut self, v: i64) { self.0.extend(v.to_le_bytes()) }
    pub fn put_varint(&mut self, mut v: u64) { loop { let b = (v & 0x7f) as u8; v >>= 7; if v == 0 { self.0.push(b); break } self.0.push(b | 0x80) } }
    pub fn put_bytes(&mut self, b: &[u8]) { self.put_varint(b.len() as u64); self.0.extend_from_slice(b) }
    pub fn put_str(&mut self, s: &str) { self.put_bytes(s.as_bytes()) }
    pub fn into_inner(self) -> Vec<u8> { self.0 }
    pub fn len(&self) -> usize { self.0.len() }
    pub fn is_empty(&self) -> bool { self.0.is_empty() }
}
#[derive(Debug)]
pub struct ByteReader<'a> { b: &'a [u8], p: usize, name: &'a str }
impl<'a> ByteReader<'a> {
    pub fn new(b: &'a [u8], name: &'a str) -> Self { ByteReader { b, p: 0, name } }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> { if self.b.len() - self.p < n { return Err(Error::corrupt(self.name, "truncated")) } let s = &self.b[self.p..self.p + n]; self.p += n; Ok(s) }
    pub fn u8(&mut self) -> Result<u8> { Ok(self.take(1)?[0]) }
    pub fn u32(&mut self) -> Result<u32> { Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4"))) }
    pub fn u64(&mut self) -> Result<u64> { Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8"))) }
    pub fn i64(&mut self) -> Result<i64> { Ok(self.u64()? as i64) }
    pub fn varint(&mut self) -> Result<u64> { let mut v = 0u64; for i in 0..10 { let b = self.u8()?; v |= ((b & 0x7f) as u64) << (7 * i); if b & 0x80 == 0 { return Ok(v) } } Err(Error::corrupt(self.name, "varint")) }
    pub fn bytes(&mut self) -> Result<&'a [u8]> { let n = self.varint()?; if n > self.remaining() as u64 { return Err(Error::corrupt(self.name, "truncated")) } self.take(n as usize) }
    pub fn str(&mut self) -> Result<&'a str> { std::str::from_utf8(self.bytes()?).map_err(|_| Error::corrupt(self.name, "utf8")) }
    pub fn is_empty(&self) -> bool { self.p == self.b.len() }
    pub fn remaining(&self) -> usize { self.b.len() - self.p }
}
