//! A minimal ZIP writer (PKWARE APPNOTE 6.3): stored entries (no compression: DICOM pixel data
//! rarely shrinks and an inspector's tools read stored entries everywhere), CRC-32, UTF-8 names,
//! and ZIP64 records when the archive or an entry passes 4 GiB or 65535 entries.

use std::io::{self, Write};

const LOCAL: u32 = 0x0403_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END: u32 = 0x0605_4b50;
const END64: u32 = 0x0606_4b50;
const LOCATOR64: u32 = 0x0706_4b50;
/// General purpose flag bit 11: names are UTF-8.
const UTF8: u16 = 1 << 11;
/// 1980-01-01 00:00 in MS-DOS format (date, time): entries carry no local time.
const DOS_DATE: u16 = (1 << 5) | 1;

struct Entry {
    name: String,
    crc: u32,
    size: u64,
    offset: u64,
}

/// Writes a ZIP archive entry by entry into `W`.
pub struct ZipWriter<W: Write> {
    out: W,
    written: u64,
    entries: Vec<Entry>,
}

impl<W: Write> ZipWriter<W> {
    pub fn new(out: W) -> Self {
        ZipWriter { out, written: 0, entries: Vec::new() }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Adds a file. Names use `/` and must be relative without `..`.
    pub fn add(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        if name.is_empty() || name.starts_with('/') || name.split('/').any(|p| p == ".." || p.is_empty()) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad entry name {name:?}")));
        }
        if self.entries.iter().any(|e| e.name == name) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("duplicate entry {name:?}")));
        }
        let crc = crc32fast::hash(data);
        let size = data.len() as u64;
        let offset = self.written;
        let zip64 = size >= 0xFFFF_FFFF;
        let name_len = u16::try_from(name.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "entry name too long"))?;
        let mut h = Vec::with_capacity(30 + name.len() + 20);
        h.extend_from_slice(&LOCAL.to_le_bytes());
        h.extend_from_slice(&(if zip64 { 45_u16 } else { 20_u16 }).to_le_bytes());
        h.extend_from_slice(&UTF8.to_le_bytes());
        h.extend_from_slice(&0_u16.to_le_bytes()); // stored
        h.extend_from_slice(&0_u16.to_le_bytes()); // time
        h.extend_from_slice(&DOS_DATE.to_le_bytes());
        h.extend_from_slice(&crc.to_le_bytes());
        let small = |v: u64| if zip64 { 0xFFFF_FFFF_u32 } else { u32::try_from(v).unwrap_or(u32::MAX) };
        h.extend_from_slice(&small(size).to_le_bytes());
        h.extend_from_slice(&small(size).to_le_bytes());
        h.extend_from_slice(&name_len.to_le_bytes());
        h.extend_from_slice(&(if zip64 { 20_u16 } else { 0 }).to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        if zip64 {
            h.extend_from_slice(&1_u16.to_le_bytes());
            h.extend_from_slice(&16_u16.to_le_bytes());
            h.extend_from_slice(&size.to_le_bytes());
            h.extend_from_slice(&size.to_le_bytes());
        }
        self.put(&h)?;
        self.put(data)?;
        self.entries.push(Entry { name: name.to_string(), crc, size, offset });
        Ok(())
    }

    /// Writes the central directory and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        let cd_start = self.written;
        let entries = std::mem::take(&mut self.entries);
        for e in &entries {
            let zip64 = e.size >= 0xFFFF_FFFF || e.offset >= 0xFFFF_FFFF;
            let mut extra = Vec::new();
            if zip64 {
                extra.extend_from_slice(&1_u16.to_le_bytes());
                extra.extend_from_slice(&24_u16.to_le_bytes());
                extra.extend_from_slice(&e.size.to_le_bytes());
                extra.extend_from_slice(&e.size.to_le_bytes());
                extra.extend_from_slice(&e.offset.to_le_bytes());
            }
            let mut h = Vec::with_capacity(46 + e.name.len() + extra.len());
            h.extend_from_slice(&CENTRAL.to_le_bytes());
            h.extend_from_slice(&(if zip64 { 45_u16 } else { 20_u16 }).to_le_bytes()); // made by
            h.extend_from_slice(&(if zip64 { 45_u16 } else { 20_u16 }).to_le_bytes()); // needed
            h.extend_from_slice(&UTF8.to_le_bytes());
            h.extend_from_slice(&0_u16.to_le_bytes());
            h.extend_from_slice(&0_u16.to_le_bytes());
            h.extend_from_slice(&DOS_DATE.to_le_bytes());
            h.extend_from_slice(&e.crc.to_le_bytes());
            let cap = |v: u64| if zip64 { 0xFFFF_FFFF_u32 } else { u32::try_from(v).unwrap_or(u32::MAX) };
            h.extend_from_slice(&cap(e.size).to_le_bytes());
            h.extend_from_slice(&cap(e.size).to_le_bytes());
            h.extend_from_slice(&u16::try_from(e.name.len()).unwrap_or(u16::MAX).to_le_bytes());
            h.extend_from_slice(&u16::try_from(extra.len()).unwrap_or(0).to_le_bytes());
            h.extend_from_slice(&0_u16.to_le_bytes()); // comment
            h.extend_from_slice(&0_u16.to_le_bytes()); // disk
            h.extend_from_slice(&0_u16.to_le_bytes()); // internal attributes
            h.extend_from_slice(&0_u32.to_le_bytes()); // external attributes
            h.extend_from_slice(&cap(e.offset).to_le_bytes());
            h.extend_from_slice(e.name.as_bytes());
            h.extend_from_slice(&extra);
            self.put(&h)?;
        }
        let cd_size = self.written - cd_start;
        let count = entries.len() as u64;
        let need64 = count >= 0xFFFF || cd_start >= 0xFFFF_FFFF || cd_size >= 0xFFFF_FFFF;
        if need64 {
            let end64_at = self.written;
            let mut r = Vec::with_capacity(56 + 20);
            r.extend_from_slice(&END64.to_le_bytes());
            r.extend_from_slice(&44_u64.to_le_bytes());
            r.extend_from_slice(&45_u16.to_le_bytes());
            r.extend_from_slice(&45_u16.to_le_bytes());
            r.extend_from_slice(&0_u32.to_le_bytes());
            r.extend_from_slice(&0_u32.to_le_bytes());
            r.extend_from_slice(&count.to_le_bytes());
            r.extend_from_slice(&count.to_le_bytes());
            r.extend_from_slice(&cd_size.to_le_bytes());
            r.extend_from_slice(&cd_start.to_le_bytes());
            r.extend_from_slice(&LOCATOR64.to_le_bytes());
            r.extend_from_slice(&0_u32.to_le_bytes());
            r.extend_from_slice(&end64_at.to_le_bytes());
            r.extend_from_slice(&1_u32.to_le_bytes());
            self.put(&r)?;
        }
        let c16 = |v: u64| if need64 { 0xFFFF } else { u16::try_from(v).unwrap_or(u16::MAX) };
        let c32 = |v: u64| if need64 { 0xFFFF_FFFF } else { u32::try_from(v).unwrap_or(u32::MAX) };
        let mut r = Vec::with_capacity(22);
        r.extend_from_slice(&END.to_le_bytes());
        r.extend_from_slice(&0_u16.to_le_bytes());
        r.extend_from_slice(&0_u16.to_le_bytes());
        r.extend_from_slice(&c16(count).to_le_bytes());
        r.extend_from_slice(&c16(count).to_le_bytes());
        r.extend_from_slice(&c32(cd_size).to_le_bytes());
        r.extend_from_slice(&c32(cd_start).to_le_bytes());
        r.extend_from_slice(&0_u16.to_le_bytes());
        self.put(&r)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_readable_archive() {
        let mut z = ZipWriter::new(Vec::new());
        z.add("manifest.json", b"{}").unwrap();
        z.add("images/a b/\u{e9}.dcm", &[0_u8, 1, 2, 3]).unwrap();
        z.add("empty.txt", b"").unwrap();
        assert!(z.add("../escape", b"x").is_err());
        assert!(z.add("manifest.json", b"again").is_err());
        let bytes = z.finish().unwrap();
        // End of central directory: 3 entries.
        let end = &bytes[bytes.len() - 22..];
        assert_eq!(&end[..4], &END.to_le_bytes());
        assert_eq!(u16::from_le_bytes([end[10], end[11]]), 3);
        // The first local header carries the CRC-32 of "{}" and the name.
        assert_eq!(&bytes[..4], &LOCAL.to_le_bytes());
        assert_eq!(u32::from_le_bytes(bytes[14..18].try_into().unwrap()), crc32fast::hash(b"{}"));
        assert_eq!(&bytes[30..43], b"manifest.json");
        // If python3 is here, its zipfile module (an independent reader) agrees.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.zip");
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(out) = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; \
                 print(','.join(f'{i.filename}:{len(z.read(i))}' for i in z.infolist()))",
            ])
            .arg(&path)
            .output()
        {
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                "manifest.json:2,images/a b/\u{e9}.dcm:4,empty.txt:0"
            );
        }
    }
}
