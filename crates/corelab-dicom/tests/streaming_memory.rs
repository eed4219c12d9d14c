//! The stream path holds the header only: a 512 MiB native Pixel Data value and 256 MiB of
//! encapsulated fragments pass through with a small, bounded memory peak. (Own test binary, so no
//! other test moves the process's memory high-water mark.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};

use corelab_dicom::deid::{Outcome, deidentify_stream};
use corelab_domain::deid_profile::DeidProfile;
use dicom_core::{DataElement, Tag, VR, value::PrimitiveValue};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

const BLOCK: usize = 1 << 16;

/// Header bytes, then a generated body that is never held in memory whole.
struct Gen {
    head: std::io::Cursor<Vec<u8>>,
    body_len: u64,
    produced: u64,
    pattern: Vec<u8>,
}

impl Read for Gen {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.head.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        if self.produced >= self.body_len {
            return Ok(0);
        }
        let n = ((self.body_len - self.produced) as usize).min(buf.len()).min(BLOCK);
        let off = (self.produced % BLOCK as u64) as usize;
        let first = n.min(BLOCK - off);
        buf[..first].copy_from_slice(&self.pattern[off..off + first]);
        self.produced += first as u64;
        Ok(first)
    }
}

/// Counts bytes and remembers the last few.
#[derive(Default)]
struct Sink {
    n: u64,
    tail: Vec<u8>,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.n += buf.len() as u64;
        self.tail.extend_from_slice(&buf[buf.len().saturating_sub(16)..]);
        if self.tail.len() > 64 {
            self.tail.drain(..self.tail.len() - 16);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const FRAG: usize = 1 << 20;

/// Header, then `left` fragment items of FRAG bytes, then the sequence delimiter.
struct FragGen {
    head: std::io::Cursor<Vec<u8>>,
    left: u32,
    /// Bytes of the current item (header + value) already produced.
    in_frag: Option<usize>,
    done: bool,
}

impl Read for FragGen {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.head.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        let mut item = [0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0];
        item[4..].copy_from_slice(&(FRAG as u32).to_le_bytes());
        match self.in_frag {
            None if self.left == 0 => {
                if self.done {
                    return Ok(0);
                }
                self.done = true;
                let d = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Ok(n)
            }
            None => {
                let n = item.len().min(buf.len());
                buf[..n].copy_from_slice(&item[..n]);
                self.in_frag = Some(n);
                Ok(n)
            }
            Some(pos) if pos < 8 => {
                let n = (8 - pos).min(buf.len());
                buf[..n].copy_from_slice(&item[pos..pos + n]);
                self.in_frag = Some(pos + n);
                Ok(n)
            }
            Some(pos) => {
                let n = (8 + FRAG - pos).min(buf.len()).min(BLOCK);
                buf[..n].fill(0xAB);
                if pos + n == 8 + FRAG {
                    self.in_frag = None;
                    self.left -= 1;
                } else {
                    self.in_frag = Some(pos + n);
                }
                Ok(n)
            }
        }
    }
}

fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn header(ts: &str) -> Vec<u8> {
    let e = vec![
        DataElement::new(Tag(0x0008, 0x0016), VR::UI, PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.2")),
        DataElement::new(Tag(0x0008, 0x0018), VR::UI, PrimitiveValue::from("1.2.826.0.1.3680043.9.4242")),
        DataElement::new(Tag(0x0010, 0x0010), VR::PN, PrimitiveValue::from("DOE^JOHN")),
        DataElement::new(Tag(0x0028, 0x0010), VR::US, PrimitiveValue::from(512u16)),
        DataElement::new(Tag(0x0028, 0x0011), VR::US, PrimitiveValue::from(512u16)),
    ];
    let f = InMemDicomObject::from_element_iter(e)
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(ts).implementation_class_uid("1.2.3.4"))
        .unwrap();
    let mut b = Vec::new();
    f.write_all(&mut b).unwrap();
    b
}

#[test]
fn large_pixel_data_streams_with_bounded_memory() {
    let Some(before) = peak_rss_kib() else {
        eprintln!("SKIPPED: no /proc/self/status");
        return;
    };
    let pattern: Vec<u8> = (0..BLOCK).map(|i| (i * 7 % 251) as u8).collect();
    let c = common::ctx(DeidProfile::default(), "SUBJ-1", None);

    // Native: 512 MiB value.
    let len: u32 = 512 << 20;
    let mut head = header("1.2.840.10008.1.2.1");
    head.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0]);
    head.extend_from_slice(&len.to_le_bytes());
    let native =
        Gen { head: std::io::Cursor::new(head), body_len: u64::from(len), produced: 0, pattern: pattern.clone() };
    let mut sink = Sink::default();
    let report = deidentify_stream(native, &mut sink, &c).unwrap();
    assert!(sink.n > u64::from(len), "everything written");
    let want_tail = &pattern[BLOCK - 16..];
    assert_eq!(&sink.tail[sink.tail.len() - 16..], want_tail, "pixel bytes copied unchanged to the end");
    assert_eq!(report.count(Tag(0x0010, 0x0010), Outcome::Written), 1);

    // Encapsulated: empty offset table, then 256 fragments of 1 MiB, generated on the fly.
    let mut head = header("1.2.840.10008.1.2.4.70");
    head.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
    head.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
    let frags = FragGen { head: std::io::Cursor::new(head), left: 256, in_frag: None, done: false };
    let mut sink = Sink::default();
    deidentify_stream(frags, &mut sink, &c).unwrap();
    assert!(sink.n > 256 << 20);
    assert_eq!(&sink.tail[sink.tail.len() - 8..], &[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);

    // Corrupt lengths are refused without reserving what they declare: a meta element whose VR is
    // garbage (read as a 4-byte length), and a nested item claiming 3 GB inside a small header.
    let mut bad_meta = header("1.2.840.10008.1.2.1");
    let at = bad_meta.windows(4).position(|w| w == [0x02, 0x00, 0x02, 0x00]).unwrap();
    bad_meta[at + 4] = 0;
    let err = corelab_dicom::deid::deidentify_bytes(&bad_meta, &c).unwrap_err();
    assert!(err.to_string().contains("VR"), "{err}");
    assert!(corelab_dicom::deid::read_object(&bad_meta).is_err());
    let mut nested = header("1.2.840.10008.1.2.1");
    nested.extend_from_slice(&[0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
    nested.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0x00, 0x00, 0x00, 0xC0]);
    nested.extend_from_slice(&[0x20, 0x00, 0x0E, 0x00, b'U', b'I', 4, 0, b'1', b'.', b'2', 0]);
    nested.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    let err = corelab_dicom::deid::deidentify_bytes(&nested, &c).unwrap_err();
    assert!(err.to_string().contains("declares"), "{err}");
    assert!(corelab_dicom::deid::read_object(&nested).is_err());

    let after = peak_rss_kib().unwrap();
    let grown_mib = (after.saturating_sub(before)) / 1024;
    eprintln!("peak RSS grew by {grown_mib} MiB while streaming 512 MiB native and 256 MiB encapsulated pixel data");
    assert!(grown_mib < 64, "memory grew by {grown_mib} MiB");
}
