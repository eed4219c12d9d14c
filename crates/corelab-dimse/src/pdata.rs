//! Receiving P-DATA-TF PDUs without copying their values.
//!
//! dicom-ul's reader copies every PDV value twice (the PDU out of its read buffer, then the value
//! into a `Vec`); for a C-STORE that is every pixel byte. Here a complete P-DATA-TF PDU is split
//! off the association's own read buffer and its PDVs are slices of it. Every other PDU type is
//! left in the buffer for dicom-ul to read, so association release, abort and their checks stay
//! dicom-ul's.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use dicom_ul::association::AsyncAssociation;
use dicom_ul::pdu::Pdu;
use tokio::io::AsyncReadExt;

use crate::DimseError;

const P_DATA_TF: u8 = 0x04;
/// PDU type (1), reserved (1), length (4).
const PDU_HEADER: usize = 6;

/// One presentation data value of a P-DATA-TF PDU (PS3.8 9.3.5.1).
#[derive(Debug)]
pub struct Pdv {
    pub presentation_context_id: u8,
    /// A command fragment (message control header bit 0), else a data set fragment.
    pub command: bool,
    /// The last fragment of its command or data set (bit 1).
    pub last: bool,
    pub data: Bytes,
}

/// A PDU as the association loop handles it.
pub enum Received {
    PData(Vec<Pdv>),
    Other(Pdu),
}

/// Splits the body of a P-DATA-TF PDU (after its 6-byte header) into its PDVs, checked as
/// dicom-ul checks them.
pub fn split_pdvs(mut body: Bytes) -> Result<Vec<Pdv>, DimseError> {
    let mut pdvs = Vec::with_capacity(1);
    while body.has_remaining() {
        if body.len() < 4 + 2 {
            return Err(malformed(format!("a PDV item is cut short ({} bytes left in the PDU)", body.len())));
        }
        let item_len = body.get_u32() as usize;
        if item_len < 2 {
            return Err(malformed(format!("a PDV item declares {item_len} bytes, less than its 2-byte header")));
        }
        if item_len > body.len() {
            return Err(malformed(format!("a PDV item declares {item_len} bytes but the PDU has {} left", body.len())));
        }
        let presentation_context_id = body.get_u8();
        let header = body.get_u8();
        let data = body.split_to(item_len - 2);
        pdvs.push(Pdv { presentation_context_id, command: header & 0x01 != 0, last: header & 0x02 != 0, data });
    }
    Ok(pdvs)
}

fn malformed(what: String) -> DimseError {
    DimseError::Command(format!("malformed P-DATA-TF PDU: {what}"))
}

/// What the read buffer holds: a whole P-DATA-TF PDU (its length), another PDU type, less than a
/// PDU header, or a P-DATA-TF PDU still missing some bytes (how many).
#[derive(Debug, PartialEq)]
enum Buffered {
    PData(usize),
    Other,
    NoHeader,
    Need(usize),
}

fn buffered(buf: &[u8], max_pdu_length: u32) -> Result<Buffered, DimseError> {
    if buf.len() < PDU_HEADER {
        return Ok(Buffered::NoHeader);
    }
    if buf[0] != P_DATA_TF {
        return Ok(Buffered::Other);
    }
    let len = u32::from_be_bytes([buf[2], buf[3], buf[4], buf[5]]);
    if len > max_pdu_length {
        return Err(DimseError::Command(format!(
            "P-DATA-TF PDU of {len} bytes is larger than the {max_pdu_length} negotiated"
        )));
    }
    let whole = PDU_HEADER + len as usize;
    Ok(if buf.len() >= whole { Buffered::PData(whole) } else { Buffered::Need(whole - buf.len()) })
}

/// Receives the next PDU, waiting at most `timeout` for all of it.
pub async fn receive<A, S>(assoc: &mut A, max_pdu_length: u32, timeout: Duration) -> Result<Received, DimseError>
where
    A: AsyncAssociation<S> + Send,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    match tokio::time::timeout(timeout, receive_now(assoc, max_pdu_length)).await {
        Ok(r) => r,
        Err(_) => Err(DimseError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no complete PDU within {} s", timeout.as_secs()),
        ))),
    }
}

async fn receive_now<A, S>(assoc: &mut A, max_pdu_length: u32) -> Result<Received, DimseError>
where
    A: AsyncAssociation<S> + Send,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    loop {
        let (socket, buf): (&mut S, &mut BytesMut) = assoc.get_mut();
        let missing = match buffered(buf, max_pdu_length)? {
            Buffered::PData(whole) => {
                let mut pdu = buf.split_to(whole).freeze();
                pdu.advance(PDU_HEADER);
                return Ok(Received::PData(split_pdvs(pdu)?));
            }
            Buffered::Other => return Ok(Received::Other(AsyncAssociation::receive(assoc).await?)),
            Buffered::NoHeader => None,
            Buffered::Need(n) => Some(n),
        };
        // Read no further than this PDU (its header first, when even that is missing), so that
        // each PDU starts a buffer of its own.
        let want = missing.unwrap_or_else(|| PDU_HEADER - buf.len());
        if buf.capacity() - buf.len() < want {
            // A fresh buffer, not a grown one: growing copies every byte the allocation held
            // (the PDUs before this one), and PDVs in flight may still share it. Before the
            // header is in, room for the largest PDU the peer may send (up to 1 MiB).
            let room = missing.unwrap_or(PDU_HEADER + (max_pdu_length as usize).min(1 << 20));
            let mut fresh = BytesMut::with_capacity(buf.len() + room);
            fresh.extend_from_slice(buf);
            *buf = fresh;
        }
        let n = (&mut *socket).take(want as u64).read_buf(buf).await?;
        if n == 0 {
            let what = if buf.is_empty() {
                "the peer closed the connection without releasing the association"
            } else {
                "the peer closed the connection inside a PDU"
            };
            return Err(DimseError::Io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, what)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdv(pc: u8, header: u8, data: &[u8]) -> Vec<u8> {
        let mut v = ((data.len() + 2) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(&[pc, header]);
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn pdvs_come_out_with_their_flags_and_values() {
        let mut body = pdv(1, 0x03, b"command");
        body.extend(pdv(3, 0x00, b"data, more follows"));
        body.extend(pdv(3, 0x02, b"last data"));
        let pdvs = split_pdvs(Bytes::from(body)).unwrap();
        let seen: Vec<_> = pdvs.iter().map(|p| (p.presentation_context_id, p.command, p.last, &p.data[..])).collect();
        assert_eq!(
            seen,
            vec![
                (1, true, true, &b"command"[..]),
                (3, false, false, &b"data, more follows"[..]),
                (3, false, true, &b"last data"[..])
            ]
        );
    }

    #[test]
    fn broken_pdv_items_are_refused_with_the_reason() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0, 0, 0, 9, 1], "cut short"),
            ([0u32.to_be_bytes().to_vec(), vec![1, 2]].concat(), "less than its 2-byte header"),
            ([100u32.to_be_bytes().to_vec(), vec![1, 2, 3, 4]].concat(), "declares 100 bytes but the PDU has 4 left"),
        ];
        for (body, why) in cases {
            let err = split_pdvs(Bytes::from(body)).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn the_buffer_is_read_until_a_whole_pdata_pdu_is_in_it() {
        let mut pdu = vec![P_DATA_TF, 0, 0, 0, 0, 9];
        pdu.extend(pdv(1, 0x03, b"abcde"));
        assert_eq!(buffered(&pdu[..3], 1000).unwrap(), Buffered::NoHeader);
        assert_eq!(buffered(&pdu[..10], 1000).unwrap(), Buffered::Need(5));
        assert_eq!(buffered(&pdu, 1000).unwrap(), Buffered::PData(15));
        // A release request is dicom-ul's to read.
        assert_eq!(buffered(&[0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0], 1000).unwrap(), Buffered::Other);
        let err = buffered(&pdu, 8).unwrap_err().to_string();
        assert!(err.contains("9 bytes is larger than the 8 negotiated"), "{err}");
    }
}
