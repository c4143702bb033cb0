//! TEMPORARY stand-in until the value branch lands.
use std::path::{Path, PathBuf};
use crate::{Error, Result};
#[derive(Debug)]
pub struct SegmentWriter { path: PathBuf, kind: String, blocks: Vec<(String, Vec<u8>)> }
impl SegmentWriter {
    pub fn new(path: &Path, kind: &str) -> Self { SegmentWriter { path: path.into(), kind: kind.into(), blocks: vec![] } }
    pub fn add_block(&mut self, name: &str, bytes: Vec<u8>) { self.blocks.push((name.into(), bytes)) }
    pub fn finish(self) -> Result<u64> {
        let mut w = crate::bytes::ByteWriter::new();
        w.put_str(&self.kind); w.put_varint(self.blocks.len() as u64);
        for (n, b) in &self.blocks { w.put_str(n); w.put_bytes(b); }
        let b = w.into_inner(); std::fs::write(&self.path, &b).map_err(|e| Error::io(&self.path, e))?; Ok(b.len() as u64)
    }
}
#[derive(Debug)]
pub struct Segment { path: PathBuf, kind: String, blocks: Vec<(String, Vec<u8>)> }
impl Segment {
    pub fn open(path: &Path) -> Result<Segment> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut r = crate::bytes::ByteReader::new(&bytes, "segment");
        let kind = r.str()?.to_string(); let n = r.varint()?; let mut blocks = vec![];
        for _ in 0..n { let name = r.str()?.to_string(); blocks.push((name, r.bytes()?.to_vec())); }
        Ok(Segment { path: path.into(), kind, blocks })
    }
    pub fn kind(&self) -> &str { &self.kind }
    pub fn block(&self, name: &str) -> Result<&[u8]> { self.blocks.iter().find(|b| b.0 == name).map(|b| b.1.as_slice()).ok_or_else(|| Error::corrupt(name, "missing").in_file(&self.path)) }
}
