//! Reading a STOW-RS body with bounded memory.
//!
//! multer reads every chunk the body has ready before it parses, and keeps buffering while it
//! looks for a boundary or the end of a part's headers. [`Guarded`] keeps that bounded: it hands
//! multer at most [`YIELD_EVERY`] bytes per poll (then yields, waking itself at once), and fails
//! the body when [`MAX_WITHOUT_PROGRESS`] bytes went in without the handler seeing any part data
//! (a wrong boundary, or a header block that never ends).
//!
//! [`PartReader`] is the blocking side of one part: the ingest pipeline's `ChannelReader`, which
//! turns a cut-off part into a read error instead of a clean end, so a part that did not arrive
//! whole is never stored.

use std::io::{BufRead, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use corelab_app::ingest::ChannelReader;
use futures_util::Stream;

/// Bytes handed to multer per poll at most.
pub const YIELD_EVERY: u64 = 1024 * 1024;
/// Bytes multer may take in without any part data coming out.
pub const MAX_WITHOUT_PROGRESS: u64 = 16 * 1024 * 1024;

/// Why the body stream itself failed (as opposed to a multipart syntax error).
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body could not be read to its end (the connection was closed or timed out)")]
    Read,
    #[error(
        "more than {MAX_WITHOUT_PROGRESS} bytes arrived without a complete part header: the boundary does not match Content-Type, or a part's headers never end"
    )]
    NoProgress,
}

/// Progress shared between the body stream and the handler.
#[derive(Clone, Default)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    /// The handler saw a part begin or part data arrive.
    pub fn made(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// Bytes per piece sent from a part to its ingest task.
pub const PIECE: usize = 256 * 1024;

/// Streams the rest of one multipart part into its ingest task in [`PIECE`]s, counting progress.
/// When ingest drops its end (it gave up on the part; its result says why), `tx` becomes `None`
/// and the rest is read only to reach the next part. Dropping `tx` is left to the caller: when
/// this fails it must mark the part cut first, so that the part's reader fails instead of ending.
pub async fn feed_part(
    field: &mut multer::Field<'_>,
    progress: &Progress,
    tx: &mut Option<tokio::sync::mpsc::Sender<Bytes>>,
) -> Result<(), multer::Error> {
    while let Some(bytes) = field.chunk().await? {
        progress.made();
        if let Some(sender) = tx.as_ref() {
            // Pieces of the chunk multer read into, not copies of it.
            let mut rest = bytes;
            while !rest.is_empty() {
                let piece = rest.split_to(rest.len().min(PIECE));
                if sender.send(piece).await.is_err() {
                    *tx = None;
                    break;
                }
            }
        }
    }
    Ok(())
}

/// The request body as multer reads it, bounded as described in the module docs.
pub struct Guarded<S> {
    inner: S,
    progress: Progress,
    since_yield: u64,
    failed: bool,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, progress: Progress) -> Guarded<S> {
        Guarded { inner, progress, since_yield: 0, failed: false }
    }
}

impl<S, E> Stream for Guarded<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.failed {
            return Poll::Ready(None);
        }
        if self.since_yield >= YIELD_EVERY {
            // Let multer parse what it has before it reads more.
            self.since_yield = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let n = chunk.len() as u64;
                self.since_yield += n;
                let total = self.progress.0.fetch_add(n, Ordering::Relaxed) + n;
                if total > MAX_WITHOUT_PROGRESS {
                    self.failed = true;
                    return Poll::Ready(Some(Err(BodyError::NoProgress)));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(_))) => {
                self.failed = true;
                Poll::Ready(Some(Err(BodyError::Read)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The bytes of one part, read on the blocking side of the ingest pipeline.
pub struct PartReader {
    inner: ChannelReader,
    cut: Arc<AtomicBool>,
}

impl PartReader {
    /// `cut` is set (before the sender is dropped) when the body broke off inside this part.
    pub fn new(inner: ChannelReader, cut: Arc<AtomicBool>) -> PartReader {
        PartReader { inner, cut }
    }
}

impl PartReader {
    fn check_cut(&self) -> std::io::Result<()> {
        if self.cut.load(Ordering::SeqCst) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the request body ended inside this part",
            ));
        }
        Ok(())
    }
}

impl Read for PartReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.check_cut()?;
        }
        Ok(n)
    }
}

impl BufRead for PartReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.inner.fill_buf()?.is_empty() {
            self.check_cut()?;
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        self.inner.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[test]
    fn a_cut_part_reads_as_an_error_not_as_its_end() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.try_send(Bytes::from_static(b"abc")).unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        cut.store(true, Ordering::SeqCst);
        drop(tx);
        let mut r = PartReader::new(ChannelReader::new(Vec::new(), rx), cut);
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(out, b"abc");
        // Read as a buffer (how ingest reads pixel data) it fails the same way.
        assert_eq!(r.fill_buf().unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);

        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.try_send(Bytes::from_static(b"abc")).unwrap();
        drop(tx);
        let mut r = PartReader::new(ChannelReader::new(Vec::new(), rx), Arc::new(AtomicBool::new(false)));
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc");
    }

    #[test]
    fn the_guard_lets_the_parser_run_after_each_megabyte() {
        let chunk = Bytes::from(vec![b'x'; 256 * 1024]);
        let src = futures_util::stream::iter(std::iter::repeat_n(chunk, 8).map(Ok::<_, std::io::Error>));
        let progress = Progress::default();
        let mut g = Guarded::new(src, progress.clone());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut seen = Vec::new();
        for _ in 0..10 {
            match Pin::new(&mut g).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(_))) => seen.push('r'),
                Poll::Pending => {
                    seen.push('p');
                    progress.made();
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen.into_iter().collect::<String>(), "rrrrprrrrp");
    }

    #[tokio::test]
    async fn the_guard_fails_a_body_that_makes_no_progress_and_yields_between_megabytes() {
        let chunk = Bytes::from(vec![b'x'; 256 * 1024]);
        let n = (MAX_WITHOUT_PROGRESS / chunk.len() as u64) as usize + 2;
        let src = futures_util::stream::iter(std::iter::repeat_n(chunk.clone(), n).map(Ok::<_, std::io::Error>));
        let progress = Progress::default();
        let mut g = Guarded::new(src, progress.clone());
        let mut got = 0u64;
        let mut failed = false;
        while let Some(item) = g.next().await {
            match item {
                Ok(c) => got += c.len() as u64,
                Err(BodyError::NoProgress) => {
                    failed = true;
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(failed);
        assert!(got <= MAX_WITHOUT_PROGRESS);

        // With progress reported, the same body passes whole.
        let src = futures_util::stream::iter(std::iter::repeat_n(chunk.clone(), n).map(Ok::<_, std::io::Error>));
        let progress = Progress::default();
        let mut g = Guarded::new(src, progress.clone());
        let mut got = 0u64;
        while let Some(item) = g.next().await {
            got += item.unwrap().len() as u64;
            progress.made();
        }
        assert_eq!(got, n as u64 * chunk.len() as u64);
    }
}
