//! Blanking burned-in text with the charter's pixel masks, on native (uncompressed) pixel data.
//!
//! A plan lists the byte ranges (and, for 1-bit data, the bits) of the Pixel Data value to set to
//! zero. The same plan is applied to an in-memory value or to chunks of a stream as they pass, so
//! both paths write the same bytes.

use corelab_domain::deid_profile::PixelMask;

use super::engine::Facts;

/// Byte ranges and bits of the Pixel Data value to zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MaskPlan {
    /// Sorted, non-overlapping half-open byte ranges.
    pub zero: Vec<(u64, u64)>,
    /// Sorted (byte offset, bits to clear) for 1-bit data.
    pub bits: Vec<(u64, u8)>,
    /// Bytes the value must have at least.
    pub needed_len: u64,
    pub regions: u32,
    pub frames: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MaskDecision {
    /// No mask of the profile matches this instance.
    NoMatch,
    Apply(MaskPlan),
    /// A mask matches but cannot be applied; the reason names why (never a value).
    NotApplied(String),
}

/// How the Pixel Data is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PixelEncoding {
    pub encapsulated: bool,
    pub big_endian: bool,
    /// Byte length of the Pixel Data value (native only).
    pub value_len: u64,
    /// False for Float/Double Float Pixel Data or a VR other than OB/OW: not masked.
    pub maskable: bool,
}

fn matches(mask: &PixelMask, f: &Facts) -> bool {
    let eq = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b.trim());
    let manu_ok = f.manufacturer.as_deref().is_some_and(|m| eq(m, &mask.manufacturer));
    let model_ok = match &mask.model {
        None => true,
        Some(prefix) => f
            .model
            .as_deref()
            .is_some_and(|m| m.trim().to_ascii_lowercase().starts_with(&prefix.trim().to_ascii_lowercase())),
    };
    manu_ok && model_ok && f.rows == Some(mask.rows) && f.columns == Some(mask.columns)
}

/// Decides whether and how to mask this instance's Pixel Data.
pub(crate) fn decide(masks: &[PixelMask], f: &Facts, enc: Option<PixelEncoding>) -> MaskDecision {
    let Some(mask) = masks.iter().find(|m| matches(m, f)) else {
        return MaskDecision::NoMatch;
    };
    let no = |r: &str| MaskDecision::NotApplied(r.to_string());
    let Some(enc) = enc else {
        return no("no Pixel Data");
    };
    if !enc.maskable {
        return no("float pixel data or pixel data VR other than OB/OW");
    }
    if enc.encapsulated {
        return no("compressed (encapsulated) pixel data: the mask needs decoding, which corelab does not do");
    }
    if enc.big_endian {
        return no("big endian pixel data");
    }
    let photometric = f.photometric.as_deref().unwrap_or("");
    if photometric.starts_with("YBR") && (photometric.ends_with("422") || photometric.ends_with("420")) {
        return no("subsampled YBR pixel data");
    }
    let (Some(rows), Some(cols)) = (f.rows, f.columns) else {
        return no("no Rows/Columns");
    };
    let spp = f.samples_per_pixel.unwrap_or(1);
    let ba = f.bits_allocated.unwrap_or(0);
    if spp != 1 && spp != 3 {
        return no("samples per pixel other than 1 or 3");
    }
    if !matches!(ba, 1 | 8 | 16 | 32 | 64) || (ba == 1 && spp != 1) {
        return no("unsupported Bits Allocated");
    }
    let frames = f.number_of_frames.unwrap_or(1).max(1);
    let (rows64, cols64, spp64) = (u64::from(rows), u64::from(cols), u64::from(spp));
    let mut plan = MaskPlan { frames, regions: 0, ..MaskPlan::default() };
    let planar = f.planar_configuration.unwrap_or(0) == 1 && spp == 3;
    let rects: Vec<(u64, u64, u64, u64)> = mask
        .regions
        .iter()
        .filter_map(|r| {
            let x0 = u64::from(r.x).min(cols64);
            let y0 = u64::from(r.y).min(rows64);
            let x1 = (u64::from(r.x) + u64::from(r.width)).min(cols64);
            let y1 = (u64::from(r.y) + u64::from(r.height)).min(rows64);
            (x1 > x0 && y1 > y0).then_some((x0, y0, x1, y1))
        })
        .collect();
    plan.regions = rects.len() as u32;
    if ba == 1 {
        let frame_bits = rows64 * cols64;
        plan.needed_len = (frame_bits * u64::from(frames)).div_ceil(8);
        let mut bits: std::collections::BTreeMap<u64, u8> = std::collections::BTreeMap::new();
        for f in 0..u64::from(frames) {
            for &(x0, y0, x1, y1) in &rects {
                for y in y0..y1 {
                    for x in x0..x1 {
                        let bit = f * frame_bits + y * cols64 + x;
                        *bits.entry(bit / 8).or_insert(0) |= 1u8 << (bit % 8);
                    }
                }
            }
        }
        plan.bits = bits.into_iter().collect();
    } else {
        let bps = u64::from(ba / 8);
        let frame_bytes = rows64 * cols64 * spp64 * bps;
        plan.needed_len = frame_bytes * u64::from(frames);
        let mut ranges = Vec::new();
        for f in 0..u64::from(frames) {
            let base = f * frame_bytes;
            for &(x0, y0, x1, y1) in &rects {
                for y in y0..y1 {
                    if planar {
                        for s in 0..spp64 {
                            let plane = base + s * rows64 * cols64 * bps;
                            ranges.push((plane + (y * cols64 + x0) * bps, plane + (y * cols64 + x1) * bps));
                        }
                    } else {
                        let px = spp64 * bps;
                        ranges.push((base + (y * cols64 + x0) * px, base + (y * cols64 + x1) * px));
                    }
                }
            }
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        plan.zero = merged;
    }
    if enc.value_len < plan.needed_len {
        return no("pixel data shorter than Rows x Columns x frames says");
    }
    MaskDecision::Apply(plan)
}

impl MaskPlan {
    /// Applies the plan to `buf`, which holds the value bytes starting at `offset`.
    pub fn apply(&self, offset: u64, buf: &mut [u8]) {
        let end = offset + buf.len() as u64;
        let start_idx = self.zero.partition_point(|r| r.1 <= offset);
        for &(a, b) in &self.zero[start_idx..] {
            if a >= end {
                break;
            }
            let lo = (a.max(offset) - offset) as usize;
            let hi = (b.min(end) - offset) as usize;
            if let Some(s) = buf.get_mut(lo..hi) {
                s.fill(0);
            }
        }
        let bit_idx = self.bits.partition_point(|b| b.0 < offset);
        for &(pos, m) in &self.bits[bit_idx..] {
            if pos >= end {
                break;
            }
            if let Some(byte) = buf.get_mut((pos - offset) as usize) {
                *byte &= !m;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corelab_domain::deid_profile::MaskRegion;

    fn facts(rows: u32, cols: u32, spp: u32, ba: u32, frames: u32, planar: u32) -> Facts {
        Facts {
            manufacturer: Some("ACME ".into()),
            model: Some("Scanner 3000".into()),
            rows: Some(rows),
            columns: Some(cols),
            samples_per_pixel: Some(spp),
            bits_allocated: Some(ba),
            number_of_frames: Some(frames),
            planar_configuration: Some(planar),
            photometric: Some(if spp == 3 { "RGB" } else { "MONOCHROME2" }.into()),
            ..Facts::default()
        }
    }

    fn mask(rows: u32, cols: u32, regions: Vec<MaskRegion>) -> PixelMask {
        PixelMask { manufacturer: "acme".into(), model: Some("scanner".into()), rows, columns: cols, regions }
    }

    fn native(len: u64) -> Option<PixelEncoding> {
        Some(PixelEncoding { encapsulated: false, big_endian: false, value_len: len, maskable: true })
    }

    /// Reference: blank pixel by pixel.
    fn reference(f: &Facts, regions: &[MaskRegion], data: &mut [u8]) {
        let (rows, cols) = (f.rows.unwrap() as usize, f.columns.unwrap() as usize);
        let spp = f.samples_per_pixel.unwrap() as usize;
        let ba = f.bits_allocated.unwrap() as usize;
        let planar = f.planar_configuration == Some(1);
        for fr in 0..f.number_of_frames.unwrap() as usize {
            for r in regions {
                for y in r.y as usize..(r.y + r.height) as usize {
                    for x in r.x as usize..(r.x + r.width) as usize {
                        if y >= rows || x >= cols {
                            continue;
                        }
                        if ba == 1 {
                            let bit = fr * rows * cols + y * cols + x;
                            data[bit / 8] &= !(1 << (bit % 8));
                            continue;
                        }
                        let bps = ba / 8;
                        for s in 0..spp {
                            let off = if planar {
                                fr * rows * cols * spp * bps + s * rows * cols * bps + (y * cols + x) * bps
                            } else {
                                fr * rows * cols * spp * bps + ((y * cols + x) * spp + s) * bps
                            };
                            data[off..off + bps].fill(0);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn plans_equal_the_pixel_by_pixel_reference() {
        let regions = vec![
            MaskRegion { x: 1, y: 0, width: 3, height: 2 },
            MaskRegion { x: 5, y: 4, width: 10, height: 10 },
            MaskRegion { x: 2, y: 1, width: 2, height: 3 },
        ];
        for (spp, ba, frames, planar) in
            [(1, 8, 1, 0), (1, 16, 3, 0), (3, 8, 2, 0), (3, 8, 2, 1), (1, 32, 1, 0), (1, 1, 3, 0), (3, 16, 1, 1)]
        {
            let f = facts(7, 9, spp, ba, frames, planar);
            let len = if ba == 1 {
                (7 * 9 * frames as usize).div_ceil(8)
            } else {
                7 * 9 * spp as usize * (ba as usize / 8) * frames as usize
            };
            let original: Vec<u8> = (0..len).map(|i| (i % 251) as u8 | 1).collect();
            let MaskDecision::Apply(plan) = decide(&[mask(7, 9, regions.clone())], &f, native(len as u64)) else {
                panic!("expected a plan for {spp} {ba} {frames} {planar}");
            };
            let mut want = original.clone();
            reference(&f, &regions, &mut want);
            // whole buffer
            let mut got = original.clone();
            plan.apply(0, &mut got);
            assert_eq!(got, want, "spp {spp} ba {ba} frames {frames} planar {planar}");
            // in odd-sized chunks, as a stream does
            let mut chunked = original.clone();
            let mut off = 0;
            for chunk in chunked.chunks_mut(5) {
                plan.apply(off as u64, chunk);
                off += chunk.len();
            }
            assert_eq!(chunked, want);
            assert_ne!(want, original);
        }
    }

    #[test]
    fn refusals_and_non_matches() {
        let f = facts(8, 8, 1, 16, 1, 0);
        let m = mask(8, 8, vec![MaskRegion { x: 0, y: 0, width: 2, height: 2 }]);
        assert_eq!(decide(&[mask(9, 8, vec![])], &f, native(128)), MaskDecision::NoMatch);
        let other_model = PixelMask { model: Some("other".into()), ..m.clone() };
        assert_eq!(decide(&[other_model], &f, native(128)), MaskDecision::NoMatch);
        let enc = Some(PixelEncoding { encapsulated: true, big_endian: false, value_len: 0, maskable: true });
        assert!(
            matches!(decide(std::slice::from_ref(&m), &f, enc), MaskDecision::NotApplied(r) if r.contains("compressed"))
        );
        assert!(
            matches!(decide(std::slice::from_ref(&m), &f, native(100)), MaskDecision::NotApplied(r) if r.contains("shorter"))
        );
        let any_model = PixelMask { model: None, ..m.clone() };
        assert!(matches!(decide(&[any_model], &f, native(128)), MaskDecision::Apply(_)));
    }
}
