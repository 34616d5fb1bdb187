//! Lines of a recording read as bytes with a cap: whatever the input, memory stays bounded and
//! a bad line is one reported line, never the end of the replay.

use std::io::{self, BufRead};

/// The longest line kept (a real record is under 2 KiB). Longer lines are skipped as they are
/// read, never held whole.
pub const MAX_LINE: usize = 1 << 20;

/// Why a line is not read as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadLine {
    #[error("line longer than {} bytes", MAX_LINE)]
    TooLong,
    #[error("not UTF-8 (invalid byte at column {column})")]
    NotUtf8 { column: usize },
}

/// Reads lines of at most `cap` bytes from a byte stream.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    cap: usize,
    /// The number of the line last returned (1-based).
    pub line: u64,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R) -> LineReader<R> {
        LineReader::with_cap(inner, MAX_LINE)
    }

    pub fn with_cap(inner: R, cap: usize) -> LineReader<R> {
        LineReader {
            inner,
            buf: Vec::new(),
            cap,
            line: 0,
        }
    }

    /// The next line without its end (`\n` or `\r\n`); `None` at the end of the stream.
    pub fn next_line(&mut self) -> io::Result<Option<Result<&str, BadLine>>> {
        self.buf.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if !any {
                    return Ok(None);
                }
                break;
            }
            any = true;
            let (take, end) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            if !too_long {
                if self.buf.len() + take > self.cap {
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(&chunk[..take]);
                }
            }
            self.inner.consume(if end { take + 1 } else { take });
            if end {
                break;
            }
        }
        self.line += 1;
        if too_long {
            // Give back what a huge line took (the buffer never exceeds the cap anyway).
            self.buf.shrink_to(64 * 1024);
            return Ok(Some(Err(BadLine::TooLong)));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        match std::str::from_utf8(&self.buf) {
            Ok(s) => Ok(Some(Ok(s))),
            Err(e) => Ok(Some(Err(BadLine::NotUtf8 {
                column: e.valid_up_to() + 1,
            }))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], cap: usize) -> Vec<Result<String, BadLine>> {
        let mut r = LineReader::with_cap(io::BufReader::with_capacity(4, input), cap);
        let mut v = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            v.push(l.map(str::to_owned));
        }
        v
    }

    #[test]
    fn lines_bad_bytes_and_overlong_lines_are_told_apart() {
        let input = b"one\r\ntwo\n\xffbad\nthis one is too long\nlast";
        assert_eq!(
            all(input, 10),
            vec![
                Ok("one".into()),
                Ok("two".into()),
                Err(BadLine::NotUtf8 { column: 1 }),
                Err(BadLine::TooLong),
                Ok("last".into()),
            ]
        );
    }

    #[test]
    fn an_endless_line_is_skipped_without_holding_it() {
        let mut r = LineReader::with_cap(io::BufReader::new(io::repeat(0).take(50 << 20)), 1024);
        assert_eq!(r.next_line().unwrap(), Some(Err(BadLine::TooLong)));
        assert!(r.buf.capacity() <= 64 * 1024);
        assert_eq!(r.next_line().unwrap(), None);
    }

    use std::io::Read as _;
}
