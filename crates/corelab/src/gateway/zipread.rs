//! Reading the files of a ZIP archive (what PACS and CD exports hand sites) for `corelab upload`:
//! stored and deflated entries, each checked against its CRC-32 and declared size. One entry is
//! in memory at a time. ZIP64, encrypted and multi-disk archives are refused with a message
//! saying to extract the archive instead.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Largest entry read (the gateway refuses bigger instances anyway).
const MAX_ENTRY: u64 = 2 << 30;

/// One file of the archive, as listed in its central directory.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    method: u16,
    flags: u16,
    crc32: u32,
    compressed: u64,
    size: u64,
    local_offset: u64,
}

pub struct ZipArchive {
    file: File,
    pub entries: Vec<Entry>,
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn io(e: std::io::Error) -> String {
    format!("cannot read the archive: {}", e.kind())
}

impl ZipArchive {
    /// Opens `path` and reads its central directory; file entries only (folders are skipped).
    pub fn open(path: &Path) -> Result<ZipArchive, String> {
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        // The end-of-central-directory record is in the last 22 + 65535 (comment) bytes.
        let tail_len = len.min(22 + 65_535);
        file.seek(SeekFrom::Start(len - tail_len)).map_err(io)?;
        let mut tail = vec![0u8; usize::try_from(tail_len).map_err(|_| "archive too large".to_string())?];
        file.read_exact(&mut tail).map_err(io)?;
        let eocd = (0..tail.len().saturating_sub(21))
            .rev()
            .find(|&i| u32_at(&tail, i) == 0x0605_4b50)
            .ok_or("not a ZIP archive (no end of central directory); extract it and give the folder")?;
        let e = &tail[eocd..];
        if u16_at(e, 4) != 0 || u16_at(e, 6) != 0 {
            return Err("multi-part ZIP archives are not read; extract it and give the folder".into());
        }
        let count = u16_at(e, 10);
        let cd_size = u32_at(e, 12);
        let cd_offset = u32_at(e, 16);
        if count == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF {
            return Err("ZIP64 archives (over 4 GB or 65535 files) are not read; extract it and give the folder".into());
        }
        if u64::from(cd_offset) + u64::from(cd_size) > len {
            return Err("the archive is truncated (its directory points past the end)".into());
        }
        file.seek(SeekFrom::Start(u64::from(cd_offset))).map_err(io)?;
        let mut cd = vec![0u8; cd_size as usize];
        file.read_exact(&mut cd).map_err(io)?;
        let mut entries = Vec::with_capacity(usize::from(count));
        let mut i = 0usize;
        for _ in 0..count {
            if i + 46 > cd.len() || u32_at(&cd, i) != 0x0201_4b50 {
                return Err("the archive's central directory is damaged".into());
            }
            let name_len = usize::from(u16_at(&cd, i + 28));
            let extra_len = usize::from(u16_at(&cd, i + 30));
            let comment_len = usize::from(u16_at(&cd, i + 32));
            let end = i + 46 + name_len;
            if end > cd.len() {
                return Err("the archive's central directory is damaged".into());
            }
            let name = String::from_utf8_lossy(&cd[i + 46..end]).to_string();
            let entry = Entry {
                name,
                method: u16_at(&cd, i + 10),
                flags: u16_at(&cd, i + 8),
                crc32: u32_at(&cd, i + 16),
                compressed: u64::from(u32_at(&cd, i + 20)),
                size: u64::from(u32_at(&cd, i + 24)),
                local_offset: u64::from(u32_at(&cd, i + 42)),
            };
            if entry.size == 0xFFFF_FFFF || entry.compressed == 0xFFFF_FFFF || entry.local_offset == 0xFFFF_FFFF {
                return Err("ZIP64 archives (over 4 GB) are not read; extract it and give the folder".into());
            }
            if !entry.name.ends_with('/') {
                entries.push(entry);
            }
            i = end + extra_len + comment_len;
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ZipArchive { file, entries })
    }

    /// The bytes of one entry, checked against its size and CRC-32.
    pub fn read(&mut self, entry: &Entry) -> Result<Vec<u8>, String> {
        if entry.flags & 1 != 0 {
            return Err("encrypted in the archive; extract it first".into());
        }
        if entry.size > MAX_ENTRY {
            return Err(format!("larger than {} bytes", MAX_ENTRY));
        }
        let mut local = [0u8; 30];
        self.file.seek(SeekFrom::Start(entry.local_offset)).map_err(io)?;
        self.file.read_exact(&mut local).map_err(io)?;
        if u32_at(&local, 0) != 0x0403_4b50 {
            return Err("the archive is damaged (no local header where the directory says)".into());
        }
        let skip = u64::from(u16_at(&local, 26)) + u64::from(u16_at(&local, 28));
        self.file.seek(SeekFrom::Current(skip as i64)).map_err(io)?;
        let raw = (&mut self.file).take(entry.compressed);
        let mut out = Vec::with_capacity(entry.size as usize);
        // Read at most one byte past the declared size, so a lying header cannot inflate without bound.
        let limit = entry.size + 1;
        match entry.method {
            0 => raw.take(limit).read_to_end(&mut out).map_err(io)?,
            8 => flate2::read::DeflateDecoder::new(raw)
                .take(limit)
                .read_to_end(&mut out)
                .map_err(|_| "damaged in the archive (deflate data does not decode)".to_string())?,
            m => return Err(format!("compressed with ZIP method {m}, which is not read; extract it first")),
        };
        if out.len() as u64 != entry.size {
            return Err("damaged in the archive (its size does not match the directory)".into());
        }
        if crc32fast::hash(&out) != entry.crc32 {
            return Err("damaged in the archive (CRC-32 mismatch)".into());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A minimal ZIP writer for the tests: stored or deflated entries.
    fn zip(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
        let (mut out, mut cd) = (Vec::new(), Vec::new());
        for (name, data, deflate) in entries {
            let body = if *deflate {
                let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            } else {
                data.to_vec()
            };
            let method: u16 = if *deflate { 8 } else { 0 };
            let crc = crc32fast::hash(data);
            let offset = out.len() as u32;
            out.extend(0x0403_4b50u32.to_le_bytes());
            out.extend([20, 0, 0, 0]);
            out.extend(method.to_le_bytes());
            out.extend([0, 0, 0, 0]);
            out.extend(crc.to_le_bytes());
            out.extend((body.len() as u32).to_le_bytes());
            out.extend((data.len() as u32).to_le_bytes());
            out.extend((name.len() as u16).to_le_bytes());
            out.extend([0, 0]);
            out.extend(name.as_bytes());
            out.extend(&body);
            cd.extend(0x0201_4b50u32.to_le_bytes());
            cd.extend([20, 0, 20, 0, 0, 0]);
            cd.extend(method.to_le_bytes());
            cd.extend([0, 0, 0, 0]);
            cd.extend(crc.to_le_bytes());
            cd.extend((body.len() as u32).to_le_bytes());
            cd.extend((data.len() as u32).to_le_bytes());
            cd.extend((name.len() as u16).to_le_bytes());
            cd.extend([0u8; 12]);
            cd.extend(offset.to_le_bytes());
            cd.extend(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend(&cd);
        out.extend(0x0605_4b50u32.to_le_bytes());
        out.extend([0, 0, 0, 0]);
        out.extend((entries.len() as u16).to_le_bytes());
        out.extend((entries.len() as u16).to_le_bytes());
        out.extend((cd.len() as u32).to_le_bytes());
        out.extend(cd_offset.to_le_bytes());
        out.extend([0, 0]);
        out
    }

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn stored_and_deflated_entries_read_back_in_name_order() {
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
        let f = write(&zip(&[("b/two.dcm", &big, true), ("a.dcm", b"one", false), ("dir/", b"", false)]));
        let mut z = ZipArchive::open(f.path()).unwrap();
        let names: Vec<String> = z.entries.iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, ["a.dcm", "b/two.dcm"]);
        let entries = z.entries.clone();
        assert_eq!(z.read(&entries[0]).unwrap(), b"one");
        assert_eq!(z.read(&entries[1]).unwrap(), big);
    }

    #[test]
    fn damage_is_named() {
        let mut bytes = zip(&[("a.dcm", b"hello world", false)]);
        // Flip a data byte: the CRC no longer matches.
        let pos = bytes.windows(5).position(|w| w == b"hello").unwrap();
        bytes[pos] = b'j';
        let f = write(&bytes);
        let mut z = ZipArchive::open(f.path()).unwrap();
        let e = z.entries[0].clone();
        assert!(z.read(&e).unwrap_err().contains("CRC-32"));
        let f = write(b"this is not a zip file at all, just text");
        assert!(ZipArchive::open(f.path()).err().unwrap().contains("not a ZIP archive"));
        let whole = zip(&[("a.dcm", b"hello world", false)]);
        let f = write(&whole[..whole.len() - 30]);
        assert!(ZipArchive::open(f.path()).is_err());
    }
}
