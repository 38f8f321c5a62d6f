//! Reading a stored file in pieces, so that the file routes send a 50 MB model or any byte range of
//! it without holding the whole file in memory.

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// How much of a file one read takes: a thumbnail or a typical original is one read, a large model
/// a few hundred.
const CHUNK: u64 = 256 * 1024;

/// One byte range as a `Range: bytes=…` header asks for it, before the file's size is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `a-b`: from byte a to byte b, both included.
    Span(u64, u64),
    /// `a-`: from byte a to the end.
    From(u64),
    /// `-n`: the last n bytes.
    Last(u64),
}

impl ByteRange {
    /// A single range of bytes. Anything else (several ranges, another unit, nonsense) is `None`,
    /// and the whole file is sent, as RFC 9110 allows.
    pub fn parse(header: &str) -> Option<Self> {
        let spec = header.trim().strip_prefix("bytes=")?;
        if spec.contains(',') {
            return None;
        }
        let (a, b) = spec.split_once('-')?;
        match (a.trim(), b.trim()) {
            ("", n) => Some(Self::Last(n.parse().ok()?)),
            (a, "") => Some(Self::From(a.parse().ok()?)),
            (a, b) => {
                let (a, b) = (a.parse().ok()?, b.parse().ok()?);
                (a <= b).then_some(Self::Span(a, b))
            }
        }
    }

    /// The first and last byte this covers in a file of `size` bytes; `None` when it covers none
    /// (then the whole file is sent).
    pub fn within(self, size: u64) -> Option<(u64, u64)> {
        let last = size.checked_sub(1)?;
        let (start, end) = match self {
            Self::Span(a, b) => (a, b.min(last)),
            Self::From(a) => (a, last),
            Self::Last(0) => return None,
            Self::Last(n) => (size.saturating_sub(n), last),
        };
        (start <= end).then_some((start, end))
    }
}

/// A stored file opened for reading.
pub struct Reading {
    /// The whole file's size.
    pub size: u64,
    /// The first and last byte `body` carries, when a range was asked for and the file has it.
    pub range: Option<(u64, u64)>,
    pub body: BoxStream<'static, std::io::Result<Bytes>>,
}

impl Reading {
    /// How many bytes `body` carries.
    pub fn len(&self) -> u64 {
        match self.range {
            Some((start, end)) => end - start + 1,
            None => self.size,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Opens the local file at `path` (`None` when it is not there) and reads its first piece; the
/// rest is read as the body is polled, a piece at a time on the blocking pool. The open file is
/// read even if the sweep removes its name meanwhile.
pub(super) fn open_local(
    path: &std::path::Path,
    range: Option<ByteRange>,
) -> std::io::Result<Option<Reading>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let size = file.metadata()?.len();
    let range = range.and_then(|r| r.within(size));
    let (start, stop) = match range {
        Some((first, last)) => (first, last + 1),
        None => (0, size),
    };
    let first_end = stop.min(start + CHUNK);
    let first = read_at(&file, start, first_end - start)?;
    let body = stream::once(std::future::ready(Ok(first)));
    let body = if first_end < stop {
        body.chain(rest_of(Arc::new(file), first_end, stop)).boxed()
    } else {
        body.boxed()
    };
    Ok(Some(Reading { size, range, body }))
}

/// The bytes of `file` from `from` up to `to` (excluded), a piece per poll.
fn rest_of(
    file: Arc<std::fs::File>,
    from: u64,
    to: u64,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    stream::try_unfold(from, move |at| {
        let file = Arc::clone(&file);
        async move {
            if at >= to {
                return Ok(None);
            }
            let n = (to - at).min(CHUNK);
            let piece = tokio::task::spawn_blocking(move || read_at(&file, at, n))
                .await
                .map_err(std::io::Error::other)??;
            Ok(Some((piece, at + n)))
        }
    })
    .boxed()
}

fn read_at(file: &std::fs::File, at: u64, n: u64) -> std::io::Result<Bytes> {
    let mut buf = vec![0; usize::try_from(n).map_err(std::io::Error::other)?];
    file.read_exact_at(&mut buf, at)?;
    Ok(Bytes::from(buf))
}

/// [`open_local`] for any other store: the range is resolved against the object's size (one
/// `HEAD`), then the bytes come as the store sends them.
pub(super) async fn open_remote(
    store: &dyn ObjectStore,
    key: &object_store::path::Path,
    range: Option<ByteRange>,
) -> anyhow::Result<Option<Reading>> {
    let range = match range {
        Some(range) => match store.head(key).await {
            Ok(meta) => range.within(meta.size),
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let options = GetOptions {
        range: range.map(|(start, end)| GetRange::Bounded(start..end + 1)),
        ..GetOptions::default()
    };
    let got = match store.get_opts(key, options).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let size = got.meta.size;
    Ok(Some(Reading {
        size,
        range,
        body: got.into_stream().map_err(std::io::Error::other).boxed(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_header_is_one_range_of_bytes_or_none() {
        assert_eq!(ByteRange::parse("bytes=0-3"), Some(ByteRange::Span(0, 3)));
        assert_eq!(ByteRange::parse("bytes=10-"), Some(ByteRange::From(10)));
        assert_eq!(ByteRange::parse("bytes=-4"), Some(ByteRange::Last(4)));
        for refused in [
            "bytes=0-1,4-5",
            "items=0-3",
            "bytes=5-2",
            "bytes=a-b",
            "bytes=-",
            "0-3",
        ] {
            assert_eq!(ByteRange::parse(refused), None, "{refused}");
        }
        assert_eq!(ByteRange::Span(0, 3).within(10), Some((0, 3)));
        assert_eq!(ByteRange::Span(8, 99).within(10), Some((8, 9)));
        assert_eq!(ByteRange::Span(10, 12).within(10), None);
        assert_eq!(ByteRange::From(9).within(10), Some((9, 9)));
        assert_eq!(ByteRange::Last(4).within(10), Some((6, 9)));
        assert_eq!(ByteRange::Last(40).within(10), Some((0, 9)));
        assert_eq!(ByteRange::Last(0).within(10), None);
        assert_eq!(ByteRange::From(0).within(0), None);
    }
}
