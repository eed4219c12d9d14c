//! Streaming de-identification: header in memory, Pixel Data value copied through in chunks.
//!
//! The top-level elements are scanned (element headers only, values copied into a buffer) up to the
//! first Pixel Data element (7FE0,0008/0009/0010); that buffer is parsed with dicom-rs and goes
//! through the same code as [`deidentify_object`](super::deidentify_object). The Pixel Data element is
//! then re-encoded the way dicom-rs writes it (odd lengths padded, encapsulated items copied one at a
//! time), and whatever follows it (digital signatures, padding) is parsed and de-identified too.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};

use dicom_core::Tag;
use dicom_core::header::Header;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_encoding::text::SpecificCharacterSet;
use dicom_object::{FileMetaTable, InMemDicomObject};
use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;

use super::context::DeidContext;
use super::pixels::{MaskDecision, MaskPlan, PixelEncoding};
use super::report::DeidReport;
use super::{DeidError, PIXEL_DATA, Syntax, deid_header, deid_meta, inner_ts, syntax_of};

const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_END: Tag = Tag(0xFFFE, 0xE00D);
const SEQ_END: Tag = Tag(0xFFFE, 0xE0DD);
const MAX_DEPTH: u32 = 64;
const CHUNK: usize = 1 << 16;
/// The output buffer: holds a usual header whole.
const OUT_BUF: usize = 1 << 14;

fn is_pixel_tag(t: Tag) -> bool {
    t == Tag(0x7FE0, 0x0008) || t == Tag(0x7FE0, 0x0009) || t == PIXEL_DATA
}

fn tag_str(t: Tag) -> String {
    super::report::tag_text(t)
}

/// A reader that counts bytes, for error positions.
struct Src<R> {
    r: R,
    pos: u64,
}

impl<R: Read> Src<R> {
    /// Reads exactly `buf.len()` bytes; Ok(false) at a clean end of input (nothing read) when
    /// `eof_ok`.
    fn fill(&mut self, buf: &mut [u8], what: &str, eof_ok: bool) -> Result<bool, DeidError> {
        let mut got = 0;
        while got < buf.len() {
            match self.r.read(&mut buf[got..]) {
                Ok(0) => {
                    if got == 0 && eof_ok {
                        return Ok(false);
                    }
                    return Err(DeidError::Truncated(format!(
                        "input ends inside {what} at byte {}",
                        self.pos + got as u64
                    )));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_err(e, self.pos + got as u64)),
            }
        }
        self.pos += got as u64;
        Ok(true)
    }

    /// Appends exactly `len` bytes to `out`. `what` names the value in an error; it is only
    /// formatted when there is one (this runs for every element of every header).
    fn copy_into(&mut self, len: u64, out: &mut Vec<u8>, what: impl FnOnce() -> String) -> Result<(), DeidError> {
        let before = out.len();
        // Room for the value up front (bounded: a declared length is not trusted until its bytes
        // arrive), so `read_to_end` neither probes nor grows the buffer step by step.
        out.reserve(len.min(1 << 20) as usize);
        let n = (&mut self.r).take(len).read_to_end(out).map_err(|e| read_err(e, self.pos))?;
        self.pos += n as u64;
        if (n as u64) < len {
            out.truncate(before);
            return Err(DeidError::Truncated(format!(
                "{} declares {len} bytes but the input ends after {n} (at byte {})",
                what(),
                self.pos
            )));
        }
        Ok(())
    }
}

impl<R: BufRead> Src<R> {
    /// Writes exactly `len` bytes of input to `out` straight from the reader's buffer, at most
    /// [`CHUNK`] per write: the pixel data passes through without a copy of its own.
    fn pass<W: Write>(&mut self, len: u64, out: &mut W, what: &str) -> Result<(), DeidError> {
        let mut done = 0u64;
        while done < len {
            let avail = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e, self.pos)),
            };
            if avail.is_empty() {
                return Err(DeidError::Truncated(format!("input ends inside {what} at byte {}", self.pos)));
            }
            let n = avail.len().min(CHUNK).min(usize::try_from(len - done).unwrap_or(CHUNK));
            out.write_all(&avail[..n]).map_err(werr)?;
            self.r.consume(n);
            self.pos += n as u64;
            done += n as u64;
        }
        Ok(())
    }
}

fn read_err(e: std::io::Error, pos: u64) -> DeidError {
    if e.kind() == std::io::ErrorKind::InvalidInput || e.kind() == std::io::ErrorKind::InvalidData {
        DeidError::Malformed(format!("bad deflate stream near byte {pos}"))
    } else {
        DeidError::Read(format!("at byte {pos}: {}", e.kind()))
    }
}

/// One element or item header as read: tag, VR (explicit only) and length, plus its raw bytes.
struct RawHeader {
    tag: Tag,
    vr: Option<[u8; 2]>,
    len: u32,
    raw: Vec<u8>,
}

const VRS: [&[u8; 2]; 34] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF", b"OL",
    b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI", b"UL", b"UN", b"UR", b"US",
    b"UT", b"UV",
];

fn known_vr(vr: &[u8; 2]) -> bool {
    VRS.contains(&vr)
}

fn long_vr(vr: &[u8; 2]) -> bool {
    matches!(vr, b"OB" | b"OD" | b"OF" | b"OL" | b"OV" | b"OW" | b"SQ" | b"UC" | b"UN" | b"UR" | b"UT" | b"SV" | b"UV")
}

fn u16_of(b: [u8; 2], big: bool) -> u16 {
    if big { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) }
}

fn u32_of(b: [u8; 4], big: bool) -> u32 {
    if big { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
}

/// Reads an item, item delimiter or sequence delimiter header (tag and 4-byte length in every
/// syntax); anything else there means the sequence is broken.
fn read_item_header<R: Read>(src: &mut Src<R>, syn: Syntax, seq: Tag) -> Result<RawHeader, DeidError> {
    let at = src.pos;
    let mut b = [0u8; 8];
    src.fill(&mut b, &format!("sequence {}", tag_str(seq)), false)?;
    let big = syn.big_endian;
    let tag = Tag(u16_of([b[0], b[1]], big), u16_of([b[2], b[3]], big));
    if tag.group() != 0xFFFE {
        return Err(DeidError::Malformed(format!(
            "broken sequence {}: expected an item, found {} at byte {at}",
            tag_str(seq),
            tag_str(tag)
        )));
    }
    Ok(RawHeader { tag, vr: None, len: u32_of([b[4], b[5], b[6], b[7]], big), raw: b.to_vec() })
}

fn read_header<R: Read>(src: &mut Src<R>, syn: Syntax, eof_ok: bool) -> Result<Option<RawHeader>, DeidError> {
    let at = src.pos;
    let mut t = [0u8; 4];
    if !src.fill(&mut t, "an element header", eof_ok)? {
        return Ok(None);
    }
    let big = syn.big_endian;
    let tag = Tag(u16_of([t[0], t[1]], big), u16_of([t[2], t[3]], big));
    let mut raw = t.to_vec();
    if tag.group() == 0xFFFE || !syn.explicit {
        let mut l = [0u8; 4];
        src.fill(&mut l, "an element header", false)?;
        raw.extend_from_slice(&l);
        return Ok(Some(RawHeader { tag, vr: None, len: u32_of(l, big), raw }));
    }
    let mut vr = [0u8; 2];
    src.fill(&mut vr, "an element header", false)?;
    if !known_vr(&vr) {
        return Err(DeidError::Malformed(format!("element {} at byte {at} has no valid VR", tag_str(tag))));
    }
    raw.extend_from_slice(&vr);
    let len = if long_vr(&vr) {
        let mut l = [0u8; 6];
        src.fill(&mut l, "an element header", false)?;
        raw.extend_from_slice(&l);
        u32_of([l[2], l[3], l[4], l[5]], big)
    } else {
        let mut l = [0u8; 2];
        src.fill(&mut l, "an element header", false)?;
        raw.extend_from_slice(&l);
        u32::from(u16_of(l, big))
    };
    Ok(Some(RawHeader { tag, vr: Some(vr), len, raw }))
}

/// Copies the value of an element whose header was just read (undefined length: a sequence).
fn copy_value<R: Read>(
    src: &mut Src<R>,
    h: &RawHeader,
    syn: Syntax,
    out: &mut Vec<u8>,
    depth: u32,
) -> Result<(), DeidError> {
    if h.len != UNDEFINED {
        return src.copy_into(u64::from(h.len), out, || format!("element {}", tag_str(h.tag)));
    }
    if depth > MAX_DEPTH {
        return Err(DeidError::Malformed(format!("sequences nested deeper than {MAX_DEPTH}")));
    }
    // An undefined-length UN holds implicit VR little endian content (PS3.5 6.2.2): that finds where it
    // ends in the stream. `walk` then checks the bytes the way dicom-rs reads them, which differs.
    let inner = if h.vr == Some(*b"UN") { Syntax { explicit: false, big_endian: false, deflated: false } } else { syn };
    // dicom-rs reads (7FE0,0010) encoded as SQ as a sequence of items, not of fragments.
    let fragments = h.tag == PIXEL_DATA && h.vr != Some(*b"SQ");
    loop {
        let at = src.pos;
        let item = read_item_header(src, inner, h.tag)?;
        out.extend_from_slice(&item.raw);
        match item.tag {
            SEQ_END => return Ok(()),
            ITEM if item.len != UNDEFINED || fragments => {
                if item.len == UNDEFINED {
                    return Err(DeidError::Malformed(format!("pixel data fragment of undefined length at byte {at}")));
                }
                src.copy_into(u64::from(item.len), out, || format!("an item of {}", tag_str(h.tag)))?;
            }
            ITEM => loop {
                let Some(e) = read_header(src, inner, false)? else {
                    return Err(DeidError::Truncated("sequence item is not closed".into()));
                };
                out.extend_from_slice(&e.raw);
                if e.tag == ITEM_END {
                    break;
                }
                if e.tag.group() == 0xFFFE {
                    return Err(DeidError::Malformed(format!(
                        "broken sequence {}: unexpected {} inside an item at byte {}",
                        tag_str(h.tag),
                        tag_str(e.tag),
                        src.pos
                    )));
                }
                copy_value(src, &e, inner, out, depth + 1)?;
            },
            other => {
                return Err(DeidError::Malformed(format!(
                    "broken sequence {}: expected an item, found {} at byte {at}",
                    tag_str(h.tag),
                    tag_str(other)
                )));
            }
        }
    }
}

/// Checks for the DICM magic code (with or without the 128-byte preamble).
pub(crate) fn check_magic(bytes: &[u8]) -> Result<(), DeidError> {
    if (bytes.len() >= 132 && &bytes[128..132] == b"DICM") || bytes.starts_with(b"DICM") {
        Ok(())
    } else if bytes.len() < 132 {
        Err(DeidError::NotDicom(format!("only {} bytes and no DICM magic code", bytes.len())))
    } else {
        Err(DeidError::NotDicom("no DICM magic code at byte 128".into()))
    }
}

/// Largest file meta group accepted (real ones are a few hundred bytes).
const MAX_META: u32 = 1 << 20;

/// Reads the file meta group (after DICM) into a bounded buffer, checks every length in it, then lets
/// dicom-rs parse it: a corrupt length there cannot make anything allocate more than the group.
fn read_meta<R: Read>(input: &mut R) -> Result<FileMetaTable, DeidError> {
    let mut src = Src { r: input, pos: 132 };
    let mut first = [0u8; 12];
    src.fill(&mut first, "the file meta information", false)?;
    if first[..8] != [0x02, 0x00, 0x00, 0x00, b'U', b'L', 0x04, 0x00] {
        return Err(DeidError::Malformed(
            "file meta information does not start with its group length (0002,0000)".into(),
        ));
    }
    let group_len = u32::from_le_bytes([first[8], first[9], first[10], first[11]]);
    if group_len > MAX_META {
        return Err(DeidError::Malformed(format!("file meta group length {group_len} is implausibly large")));
    }
    let mut group = Vec::new();
    src.copy_into(u64::from(group_len), &mut group, || "the file meta information".into())?;
    let le = Syntax { explicit: true, big_endian: false, deflated: false };
    validate_lengths(&group, le, 0).map_err(|e| DeidError::Malformed(format!("file meta information: {e}")))?;
    let mut bytes = b"DICM".to_vec();
    bytes.extend_from_slice(&first);
    bytes.extend_from_slice(&group);
    FileMetaTable::from_reader(bytes.as_slice())
        .map_err(|e| DeidError::Malformed(format!("file meta information: {e}")))
}

/// Header of one element or item in a buffer: (tag, VR, length, header size).
fn slice_header(buf: &[u8], syn: Syntax) -> Option<(Tag, Option<[u8; 2]>, u32, usize)> {
    let big = syn.big_endian;
    let b = |i: usize| buf.get(i).copied();
    let tag = Tag(u16_of([b(0)?, b(1)?], big), u16_of([b(2)?, b(3)?], big));
    if tag.group() == 0xFFFE || !syn.explicit {
        return Some((tag, None, u32_of([b(4)?, b(5)?, b(6)?, b(7)?], big), 8));
    }
    let vr = [b(4)?, b(5)?];
    if !known_vr(&vr) {
        // No VR dicom-rs would agree on: report it as a zero-length header the caller refuses.
        return Some((tag, Some(*b"??"), UNDEFINED, 0));
    }
    if long_vr(&vr) {
        Some((tag, Some(vr), u32_of([b(8)?, b(9)?, b(10)?, b(11)?], big), 12))
    } else {
        Some((tag, Some(vr), u32::from(u16_of([b(6)?, b(7)?], big)), 8))
    }
}

fn is_sequence(tag: Tag, vr: Option<[u8; 2]>) -> bool {
    use dicom_core::dictionary::DataDictionary;
    match vr {
        Some(v) => v == *b"SQ",
        None => dicom_dictionary_std::StandardDataDictionary
            .by_tag(tag)
            .is_some_and(|e| e.vr.relaxed() == dicom_core::VR::SQ),
    }
}

/// Size of one value as dicom-rs 0.10.1 reads the element. It reads whole values only but counts the
/// declared length, so a remainder leaves it reading headers from the wrong bytes.
fn value_unit(tag: Tag, vr: Option<[u8; 2]>) -> u32 {
    use dicom_core::dictionary::{DataDictionary, VirtualVr};
    let entry = dicom_dictionary_std::StandardDataDictionary.by_tag(tag);
    let vr = match vr {
        Some(v) => v,
        // dicom-rs's implicit VR rules: Pixel Data and Overlay Data as OW, else the dictionary's VR.
        None if tag == PIXEL_DATA || (tag.group() >> 8 == 0x60 && tag.element() == 0x3000) => *b"OW",
        None => entry.map_or(*b"UN", |e| e.vr.relaxed().to_bytes()),
    };
    let unit = vr_unit(&vr);
    // dicom-rs reads an "US or SS" element as SS, whatever its VR, once Pixel Representation is signed.
    if entry.is_some_and(|e| e.vr == VirtualVr::Xs) { unit.max(2) } else { unit }
}

/// Size of one value of this VR.
fn vr_unit(vr: &[u8; 2]) -> u32 {
    match vr {
        b"AT" | b"FL" | b"OF" | b"SL" | b"UL" | b"OL" => 4,
        b"FD" | b"OD" | b"SV" | b"UV" | b"OV" => 8,
        b"US" | b"SS" | b"OW" => 2,
        _ => 1,
    }
}

/// Checks that every declared length in a data set buffer fits inside its container, before dicom-rs
/// (which reserves memory for declared lengths) parses it. The walk splits the bytes the way
/// dicom-rs 0.10.1 does (`DataSetReader`), and refuses what dicom-rs would split differently.
fn validate_lengths(buf: &[u8], syn: Syntax, depth: u32) -> Result<(), DeidError> {
    walk(buf, syn, depth, None).map(|_| ())
}

/// Walks a data set; returns the bytes consumed when `until` is a delimiter tag that ends the walk.
fn walk(buf: &[u8], syn: Syntax, depth: u32, until: Option<Tag>) -> Result<usize, DeidError> {
    if depth > MAX_DEPTH {
        return Err(DeidError::Malformed(format!("sequences nested deeper than {MAX_DEPTH}")));
    }
    let mut pos = 0usize;
    while pos < buf.len() {
        let rest = buf.get(pos..).unwrap_or_default();
        let (tag, vr, len, hlen) =
            slice_header(rest, syn).ok_or_else(|| DeidError::Truncated(format!("element header cut at byte {pos}")))?;
        if vr == Some(*b"??") {
            return Err(DeidError::Malformed(format!("element {} at byte {pos} has no valid VR", tag_str(tag))));
        }
        pos += hlen;
        if Some(tag) == until {
            return Ok(pos);
        }
        // Where an element should start, dicom-rs takes an item delimiter as the end of the enclosing
        // item (its length ignored) and other item tags as a value or a sequence: not what is checked here.
        if tag.group() == 0xFFFE {
            return Err(DeidError::Malformed(format!(
                "unexpected {} at byte {} where a data element should start",
                tag_str(tag),
                pos - hlen
            )));
        }
        let left = buf.len() - pos;
        if len == UNDEFINED {
            // dicom-rs 0.10.1 reads any undefined-length element other than encapsulated Pixel Data as a
            // sequence in the data set's own syntax, UN too (not as implicit VR little endian): so does this.
            let fragments = tag == PIXEL_DATA && vr != Some(*b"SQ");
            let items = walk_items(buf.get(pos..).unwrap_or_default(), syn, depth, tag, false, fragments);
            pos += items.map_err(|e| match e {
                DeidError::Malformed(m) if vr == Some(*b"UN") && syn.explicit => DeidError::Malformed(format!(
                    "{m} (in {} encoded as UN with undefined length, read in the data set's explicit VR as \
                     dicom-rs reads it)",
                    tag_str(tag)
                )),
                e => e,
            })?;
            continue;
        }
        if len as usize > left {
            return Err(DeidError::Malformed(format!(
                "element {} declares {len} bytes but only {left} remain",
                tag_str(tag)
            )));
        }
        // Sequences too: dicom-rs may read an "US or SS" element as SS whatever its VR, SQ included.
        // With an explicit VR and an even length (nearly every element) the dictionary cannot
        // change the answer: its "US or SS" rule only raises the unit to 2.
        let unit = match &vr {
            Some(v) if len % 2 == 0 => vr_unit(v),
            _ => value_unit(tag, vr),
        };
        if len % unit != 0 {
            return Err(DeidError::Malformed(format!(
                "element {} declares {len} bytes, not a whole number of its {unit}-byte values",
                tag_str(tag)
            )));
        }
        let value = buf.get(pos..pos + len as usize).unwrap_or_default();
        if is_sequence(tag, vr) {
            walk_items(value, syn, depth, tag, true, false)?;
        }
        pos += len as usize;
    }
    if until.is_some() {
        return Err(DeidError::Truncated("an item or sequence is not closed".into()));
    }
    Ok(pos)
}

/// Walks the items of a sequence (`defined` length: the whole slice; undefined: up to its delimiter).
/// The items of encapsulated pixel data (`fragments`) are not data sets.
fn walk_items(
    buf: &[u8],
    syn: Syntax,
    depth: u32,
    seq: Tag,
    defined: bool,
    fragments: bool,
) -> Result<usize, DeidError> {
    let mut pos = 0usize;
    while pos < buf.len() {
        let rest = buf.get(pos..).unwrap_or_default();
        let (tag, _, len, hlen) = slice_header(rest, Syntax { explicit: false, ..syn })
            .ok_or_else(|| DeidError::Truncated(format!("sequence {} cut", tag_str(seq))))?;
        pos += hlen;
        match tag {
            // dicom-rs ends the sequence there and reads the rest of its value as elements.
            SEQ_END if defined && pos < buf.len() => {
                return Err(DeidError::Malformed(format!(
                    "sequence {} has a sequence delimiter {} bytes before the end of its declared length",
                    tag_str(seq),
                    buf.len() - pos
                )));
            }
            SEQ_END => return Ok(pos),
            // dicom-rs refuses it too, but as a data set it would be walked here.
            ITEM if len == UNDEFINED && fragments => {
                return Err(DeidError::Malformed(format!(
                    "pixel data fragment of undefined length in {}",
                    tag_str(seq)
                )));
            }
            ITEM if len == UNDEFINED => {
                pos += walk(buf.get(pos..).unwrap_or_default(), syn, depth + 1, Some(ITEM_END))?;
            }
            ITEM => {
                let left = buf.len() - pos;
                if len as usize > left {
                    return Err(DeidError::Malformed(format!(
                        "an item of {} declares {len} bytes but only {left} remain",
                        tag_str(seq)
                    )));
                }
                if !fragments {
                    validate_lengths(buf.get(pos..pos + len as usize).unwrap_or_default(), syn, depth + 1)?;
                }
                pos += len as usize;
            }
            other => {
                return Err(DeidError::Malformed(format!(
                    "broken sequence {}: expected an item, found {}",
                    tag_str(seq),
                    tag_str(other)
                )));
            }
        }
    }
    // dicom-rs would read on past the container for the missing delimiter.
    if !defined {
        return Err(DeidError::Truncated(format!("sequence {} is not closed", tag_str(seq))));
    }
    Ok(pos)
}

/// Checks a whole Part 10 file the way the stream path reads it (header lengths, pixel data items,
/// what follows), without de-identifying: used before dicom-rs parses a file in memory.
pub(crate) fn check_file(bytes: &[u8]) -> Result<(), DeidError> {
    let Head { syntax, pixel, mut src, .. } = read_head(bytes)?;
    if let Some(h) = &pixel {
        let data_syntax = Syntax { deflated: false, ..syntax };
        copy_pixel(&mut src, h, data_syntax, &mut std::io::sink(), None)?;
        let mut rest = Vec::new();
        src.r.read_to_end(&mut rest).map_err(|e| read_err(e, src.pos))?;
        // dicom-rs would read what follows from where its whole values end, not from the declared end.
        if h.len != UNDEFINED && h.len % value_unit(h.tag, h.vr) != 0 && !rest.is_empty() {
            return Err(DeidError::Malformed(format!(
                "{} declares {} bytes, not a whole number of its values, and elements follow it",
                tag_str(h.tag),
                h.len
            )));
        }
        validate_lengths(&rest, data_syntax, 0)?;
    }
    Ok(())
}

/// What was read before the Pixel Data value.
struct Head<'a> {
    meta: FileMetaTable,
    syntax: Syntax,
    ts: &'static dicom_encoding::TransferSyntax,
    header: InMemDicomObject,
    pixel: Option<RawHeader>,
    src: Src<Box<dyn BufRead + 'a>>,
}

fn read_head<'a, R: BufRead + 'a>(mut input: R) -> Result<Head<'a>, DeidError> {
    let mut first = [0u8; 132];
    let mut got = 0;
    while got < first.len() {
        match input.read(&mut first[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_err(e, got as u64)),
        }
    }
    check_magic(&first[..got])?;
    // Without a preamble the bytes after DICM were already read: put them back in front.
    let rest: Vec<u8> = if &first[..4] == b"DICM" && !(got >= 132 && &first[128..132] == b"DICM") {
        first[4..got].to_vec()
    } else {
        Vec::new()
    };
    let mut meta_src = std::io::Cursor::new(rest).chain(input);
    let meta = read_meta(&mut meta_src)?;
    let (syntax, ts) = syntax_of(meta.transfer_syntax())?;
    let body: Box<dyn BufRead + 'a> = if syntax.deflated {
        Box::new(BufReader::with_capacity(CHUNK, DeflateDecoder::new(meta_src)))
    } else {
        Box::new(meta_src)
    };
    let mut src = Src { r: body, pos: 0 };
    let data_syntax = Syntax { deflated: false, ..syntax };
    let mut buf = Vec::new();
    let mut pixel = None;
    while let Some(h) = read_header(&mut src, data_syntax, true)? {
        if is_pixel_tag(h.tag) {
            // dicom-rs (in `read_object`) would read items of an SQ there as data sets; it is not pixel data.
            if h.vr == Some(*b"SQ") {
                return Err(DeidError::Malformed(format!("{} is encoded as a sequence (SQ)", tag_str(h.tag))));
            }
            pixel = Some(h);
            break;
        }
        if h.tag.group() == 0xFFFE {
            return Err(DeidError::Malformed(format!("item tag {} at the top level", tag_str(h.tag))));
        }
        buf.extend_from_slice(&h.raw);
        copy_value(&mut src, &h, data_syntax, &mut buf, 0)?;
    }
    validate_lengths(&buf, data_syntax, 0)?;
    let header = InMemDicomObject::read_dataset_with_ts(buf.as_slice(), inner_ts(syntax, ts)?)
        .map_err(|e| DeidError::Malformed(format!("data set: {e}")))?;
    Ok(Head { meta, syntax, ts, header, pixel, src })
}

/// Reads a file's meta and header (up to Pixel Data, without its value) as a dicom-rs object.
pub(crate) fn read_header_object<R: Read>(input: R) -> Result<InMemDicomObject, DeidError> {
    Ok(read_head(BufReader::with_capacity(CHUNK, input))?.header)
}

enum Out<W: Write> {
    Plain(W),
    Deflate(DeflateEncoder<W>),
}

impl<W: Write> Write for Out<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Out::Plain(w) => w.write(buf),
            Out::Deflate(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Out::Plain(w) => w.flush(),
            Out::Deflate(w) => w.flush(),
        }
    }
}

fn werr(e: impl std::fmt::Display) -> DeidError {
    DeidError::Write(e.to_string())
}

fn encode_header(out: &mut impl Write, tag: Tag, vr: Option<[u8; 2]>, len: u32, syn: Syntax) -> Result<(), DeidError> {
    let big = syn.big_endian;
    let b16 = |v: u16| {
        if big { v.to_be_bytes() } else { v.to_le_bytes() }
    };
    let b32 = |v: u32| {
        if big { v.to_be_bytes() } else { v.to_le_bytes() }
    };
    let mut h = Vec::with_capacity(12);
    h.extend_from_slice(&b16(tag.group()));
    h.extend_from_slice(&b16(tag.element()));
    match vr {
        Some(vr) if syn.explicit && tag.group() != 0xFFFE => {
            h.extend_from_slice(&vr);
            if long_vr(&vr) {
                h.extend_from_slice(&[0, 0]);
                h.extend_from_slice(&b32(len));
            } else {
                h.extend_from_slice(&b16(len as u16));
            }
        }
        _ => h.extend_from_slice(&b32(len)),
    }
    out.write_all(&h).map_err(werr)
}

/// Copies the Pixel Data value through, re-encoding it as dicom-rs would write it.
fn copy_pixel<R: BufRead, W: Write>(
    src: &mut Src<R>,
    h: &RawHeader,
    syn: Syntax,
    out: &mut W,
    plan: Option<&MaskPlan>,
) -> Result<(), DeidError> {
    // Only a masked value is copied (to be masked); the rest passes straight through.
    let mut buf = Vec::new();
    let copy = |src: &mut Src<R>,
                out: &mut W,
                len: u64,
                buf: &mut Vec<u8>,
                plan: Option<&MaskPlan>,
                what: &str|
     -> Result<(), DeidError> {
        match plan {
            None => src.pass(len, out, what)?,
            Some(plan) => {
                buf.resize(CHUNK, 0);
                let mut done = 0u64;
                while done < len {
                    let n = (len - done).min(CHUNK as u64) as usize;
                    src.fill(&mut buf[..n], what, false)?;
                    plan.apply(done, &mut buf[..n]);
                    out.write_all(&buf[..n]).map_err(werr)?;
                    done += n as u64;
                }
            }
        }
        if len % 2 == 1 {
            out.write_all(&[0]).map_err(werr)?;
        }
        Ok(())
    };
    if h.len != UNDEFINED {
        let padded =
            h.len.checked_add(h.len % 2).ok_or_else(|| DeidError::Malformed("pixel data length overflows".into()))?;
        encode_header(out, h.tag, h.vr, padded, syn)?;
        return copy(src, out, u64::from(h.len), &mut buf, plan, "the pixel data");
    }
    if h.tag != PIXEL_DATA {
        return Err(DeidError::Malformed(format!("{} with undefined length", tag_str(h.tag))));
    }
    encode_header(out, h.tag, Some(*b"OB"), UNDEFINED, syn)?;
    let mut first = true;
    loop {
        let at = src.pos;
        let item = read_item_header(src, syn, h.tag)?;
        match item.tag {
            SEQ_END => {
                encode_header(out, SEQ_END, None, 0, syn)?;
                return Ok(());
            }
            ITEM if item.len != UNDEFINED => {
                if first && item.len % 4 != 0 {
                    return Err(DeidError::Malformed(format!(
                        "basic offset table length {} is not a multiple of 4",
                        item.len
                    )));
                }
                let padded = item
                    .len
                    .checked_add(item.len % 2)
                    .ok_or_else(|| DeidError::Malformed("fragment length overflows".into()))?;
                encode_header(out, ITEM, None, padded, syn)?;
                copy(src, out, u64::from(item.len), &mut buf, None, "a pixel data fragment")?;
                first = false;
            }
            other => {
                return Err(DeidError::Malformed(format!(
                    "encapsulated pixel data: expected a fragment item, found {} at byte {at}",
                    tag_str(other)
                )));
            }
        }
    }
}

/// The text encoder state dicom-rs has after writing `obj`: the last Specific Character Set seen.
fn final_charset(obj: &InMemDicomObject, cs: &mut SpecificCharacterSet) {
    for e in obj.iter() {
        if let (true, Value::Primitive(p)) = (e.tag() == Tag(0x0008, 0x0005), e.value()) {
            {
                let first = match p {
                    PrimitiveValue::Str(s) => Some(s.clone()),
                    PrimitiveValue::Strs(v) => v.first().cloned(),
                    _ => None,
                };
                if let Some(c) = first.and_then(|c| SpecificCharacterSet::from_code(&c)) {
                    *cs = c;
                }
            }
        }
        if let Value::Sequence(s) = e.value() {
            for it in s.items() {
                final_charset(it, cs);
            }
        }
    }
}

/// De-identifies a Part 10 stream into `output`, in the transfer syntax it came in, holding only the
/// header in memory. Returns the report.
///
/// Nothing is written before the whole header (everything up to the Pixel Data value) has been read,
/// parsed and de-identified, so not-DICOM, truncated or broken headers leave `output` untouched. An
/// error while the Pixel Data or what follows it is copied (a file truncated inside its pixels) leaves
/// `output` partly written: write to a temporary file and rename it only when this returns `Ok`, or
/// use [`deidentify_bytes`], which returns bytes only on success.
pub fn deidentify_stream<R: Read, W: Write>(input: R, output: W, ctx: &DeidContext) -> Result<DeidReport, DeidError> {
    ctx.validate()?;
    StreamHead::read(input)?.deidentify(output, ctx)
}

/// A Part 10 stream read up to its Pixel Data value: look at its matching keys, pick the context,
/// then de-identify the rest in the same pass.
///
/// ```no_run
/// # use corelab_dicom::deid::{StreamHead, DeidContext};
/// # fn ctx_for(keys: &corelab_dicom::deid::MatchKeys) -> DeidContext { unimplemented!() }
/// # fn main() -> Result<(), corelab_dicom::deid::DeidError> {
/// let input = std::io::empty();
/// let mut output = Vec::new();
/// let head = StreamHead::read(input)?;
/// let ctx = ctx_for(&head.match_keys());
/// let report = head.deidentify(&mut output, &ctx)?;
/// # Ok(()) }
/// ```
pub struct StreamHead<'a> {
    head: Head<'a>,
}

impl std::fmt::Debug for StreamHead<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamHead(<header withheld: PHI>)")
    }
}

impl<'a> StreamHead<'a> {
    /// Reads file meta and header; the Pixel Data value is not read yet.
    pub fn read<R: Read + 'a>(input: R) -> Result<StreamHead<'a>, DeidError> {
        Self::read_buffered(BufReader::with_capacity(CHUNK, input))
    }

    /// As [`StreamHead::read`], from a reader that buffers already: no buffer of its own, and
    /// the Pixel Data is written out of the reader's buffer without a copy.
    pub fn read_buffered<R: BufRead + 'a>(input: R) -> Result<StreamHead<'a>, DeidError> {
        Ok(StreamHead { head: read_head(input)? })
    }

    /// Matching keys of the (not yet de-identified) header.
    pub fn match_keys(&self) -> super::MatchKeys {
        super::match_keys_of(&self.head.header)
    }

    /// What QC needs from the original header before de-identification removes it (acquisition
    /// date, whether a contrast agent was named).
    pub fn original_facts(&self) -> crate::facts::OriginalFacts {
        crate::facts::original_facts(&self.head.header)
    }

    /// De-identifies the header and streams the rest into `output`; same guarantees as
    /// [`deidentify_stream`].
    pub fn deidentify<W: Write>(self, output: W, ctx: &DeidContext) -> Result<DeidReport, DeidError> {
        Ok(self.deidentify_with_header(output, ctx)?.0)
    }

    /// As [`StreamHead::deidentify`], and also returns the de-identified header as written (up to
    /// the Pixel Data), so a caller that indexes the output need not read it back.
    pub fn deidentify_with_header<W: Write>(
        self,
        output: W,
        ctx: &DeidContext,
    ) -> Result<(DeidReport, InMemDicomObject), DeidError> {
        ctx.validate()?;
        deidentify_head(self.head, output, ctx)
    }
}

fn deidentify_head<W: Write>(
    head: Head<'_>,
    output: W,
    ctx: &DeidContext,
) -> Result<(DeidReport, InMemDicomObject), DeidError> {
    let Head { meta, syntax, ts, header, pixel, mut src } = head;
    let inner = inner_ts(syntax, ts)?;
    let enc = pixel.as_ref().map(|h| PixelEncoding {
        encapsulated: h.len == UNDEFINED,
        big_endian: syntax.big_endian,
        value_len: if h.len == UNDEFINED { 0 } else { u64::from(h.len) + u64::from(h.len % 2) },
        maskable: h.tag == PIXEL_DATA && matches!(h.vr, None | Some([b'O', b'B']) | Some([b'O', b'W'])),
    });
    let pixel_tag = pixel.as_ref().map(|h| h.tag);
    if let Some((pt, e)) = pixel_tag.and_then(|pt| header.iter().find(|e| e.tag() > pt).map(|e| (pt, e))) {
        {
            return Err(DeidError::Malformed(format!(
                "element {} comes before {} but sorts after it",
                tag_str(e.tag()),
                tag_str(pt)
            )));
        }
    }
    let (out_header, mut outcome) = deid_header(header, ctx, enc)?;
    let mapper = outcome.engine.mapper().clone();
    let new_meta = deid_meta(&meta, &mapper, ctx, &mut outcome.engine.report);
    // Masks apply to (7FE0,0010) only and only when it is OB/OW (or implicit).
    let plan = match &outcome.mask {
        MaskDecision::Apply(p) => Some(p.clone()),
        _ => None,
    };

    // Smaller than the pieces the pixel data passes through in, so that those go straight to
    // `output` and only the header's many small writes are gathered.
    let mut w = BufWriter::with_capacity(OUT_BUF, output);
    w.write_all(&[0u8; 128]).map_err(werr)?;
    w.write_all(b"DICM").map_err(werr)?;
    new_meta.write(&mut w).map_err(werr)?;
    let mut out = if syntax.deflated {
        Out::Deflate(DeflateEncoder::new(&mut w, Compression::fast()))
    } else {
        Out::Plain(&mut w)
    };
    out_header.write_dataset_with_ts(&mut out, inner).map_err(werr)?;
    if let Some(h) = &pixel {
        let data_syntax = Syntax { deflated: false, ..syntax };
        copy_pixel(&mut src, h, data_syntax, &mut out, plan.as_ref())?;
        // What follows the pixel data: parse, de-identify, write.
        let mut rest = Vec::new();
        src.r.read_to_end(&mut rest).map_err(|e| read_err(e, src.pos))?;
        if !rest.is_empty() {
            validate_lengths(&rest, Syntax { deflated: false, ..syntax }, 0)?;
            let trailing = InMemDicomObject::read_dataset_with_ts(rest.as_slice(), inner)
                .map_err(|e| DeidError::Malformed(format!("elements after the pixel data: {e}")))?;
            if let (Some(pt), Some(e)) = (pixel_tag, trailing.iter().find(|e| Some(e.tag()) <= pixel_tag)) {
                return Err(DeidError::Malformed(format!(
                    "element {} after {} is out of order",
                    tag_str(e.tag()),
                    tag_str(pt)
                )));
            }
            let processed = outcome.engine.process(trailing, 0, false);
            let mut cs = SpecificCharacterSet::default();
            final_charset(&out_header, &mut cs);
            processed.write_dataset_with_ts_cs(&mut out, inner, cs).map_err(werr)?;
        }
    }
    match out {
        Out::Plain(w) => w.flush().map_err(werr)?,
        Out::Deflate(mut d) => {
            d.flush().map_err(werr)?;
            d.finish().map_err(werr)?.flush().map_err(werr)?;
        }
    }
    let report = std::mem::take(&mut outcome.engine.report).build(new_meta.transfer_syntax());
    Ok((report, out_header))
}

/// De-identifies a whole file held in memory; returns the output bytes only on success.
pub fn deidentify_bytes(input: &[u8], ctx: &DeidContext) -> Result<(Vec<u8>, DeidReport), DeidError> {
    let mut out = Vec::with_capacity(input.len());
    let report = deidentify_stream(input, &mut out, ctx)?;
    Ok((out, report))
}
