//! Text that a process or a runtime controls, made safe for a terminal.
//!
//! Every text renderer (trace lines, `--summary`, `explain`, `inspect`) and every message on
//! stderr passes such text (comm, argv, container and pod names, replayed `signal` and `code`
//! strings, error messages that quote input) through [`escape`] or [`Escaped`]:
//!
//! - a backslash is doubled: `\\`;
//! - a newline is `\n`;
//! - every other C0 control (U+0000–U+001F, tab and ESC included), DEL (U+007F) and every C1
//!   control (U+0080–U+009F, which some terminals take as 8-bit `CSI`, `OSC`, …) is written as
//!   the bytes it is made of, `\xNN` each: ESC is `\x1b`, U+009B is `\xc2\x9b`;
//! - a byte that is not part of valid UTF-8 is `\xNN` (a comm of `worker\xff` reads just so).
//!
//! Everything else, printable non-ASCII included (`µs`, `→`, names in any script), passes
//! through. The output is unambiguous: since backslashes are doubled, `\x1b` in it always
//! stands for the byte 0x1b of the input.
//!
//! Why not a crate: `str::escape_debug` (and `{:?}`) also escapes quotes and needs valid UTF-8;
//! `std::ascii::escape_default` escapes all non-ASCII, which would garble every legitimate
//! name outside ASCII; `bstr`'s `Debug` quotes and escapes like `{:?}`; `strip-ansi-escapes`
//! deletes sequences instead of showing them, so a name built to look like another would stay
//! hidden. The rules above are a dozen lines, and these are exactly the rules wanted.
//!
//! NDJSON does not go through here: serde_json escapes every C0 control as `\uNNNN` (`\n`,
//! `\t`, … as such) and the backslash and quote; C1 controls and DEL are valid unescaped in
//! JSON strings (RFC 8259 §7), so the bytes on the wire are safe, and a JSON consumer that
//! prints a field to a terminal owns that choice. The `json_escapes_c0_and_keeps_c1_valid`
//! test holds serde_json to this.

use std::fmt;
use std::sync::Arc;

/// Appends the escaped form of `bytes` to `out`.
pub fn escape_into(out: &mut String, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\0'..='\x1f' | '\x7f'..='\u{9f}' => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        push_hex(out, b);
                    }
                }
                c => out.push(c),
            }
        }
        for &b in chunk.invalid() {
            push_hex(out, b);
        }
    }
}

fn push_hex(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\x");
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 0xf)] as char);
}

/// The escaped form of `bytes` (a `&str`, a `String` or raw bytes).
pub fn escape(bytes: impl AsRef<[u8]>) -> String {
    let bytes = bytes.as_ref();
    let mut out = String::with_capacity(bytes.len());
    escape_into(&mut out, bytes);
    out
}

/// Whether `bytes` would come out of [`escape`] unchanged (no allocation needed).
pub fn is_plain(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'\\')
}

/// Formats its bytes escaped: `format!("{}", Escaped(name))`.
#[derive(Clone, Copy)]
pub struct Escaped<'a>(pub &'a [u8]);

impl<'a> Escaped<'a> {
    pub fn str(s: &'a str) -> Escaped<'a> {
        Escaped(s.as_bytes())
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_plain(self.0) {
            // Plain ASCII: valid UTF-8 by construction.
            f.pad(std::str::from_utf8(self.0).unwrap_or_default())
        } else {
            f.pad(&escape(self.0))
        }
    }
}

/// Bytes a process controls (its comm as /proc shows it, an argument of its command line): kept
/// as they are, written to NDJSON lossily as UTF-8, shown escaped by `Display`. Shared by
/// reference count: a process's program and arguments go into every record it is part of.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RawText(pub Arc<[u8]>);

impl RawText {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The text as UTF-8, invalid bytes replaced by U+FFFD (not for a terminal as such).
    pub fn lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }
}

impl From<&str> for RawText {
    fn from(s: &str) -> RawText {
        RawText(Arc::from(s.as_bytes()))
    }
}

impl From<Vec<u8>> for RawText {
    fn from(b: Vec<u8>) -> RawText {
        RawText(Arc::from(b))
    }
}

impl From<&[u8]> for RawText {
    fn from(b: &[u8]) -> RawText {
        RawText(Arc::from(b))
    }
}

impl PartialEq<&str> for RawText {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == *other.as_bytes()
    }
}

impl PartialEq<str> for RawText {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other.as_bytes()
    }
}

impl fmt::Display for RawText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Escaped(&self.0).fmt(f)
    }
}

impl serde::Serialize for RawText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.lossy())
    }
}

/// Read back from NDJSON (a replay): the lossy UTF-8 text the record holds.
impl<'de> serde::Deserialize<'de> for RawText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Ok(RawText(Arc::from(s.as_bytes())))
    }
}

/// The hostile name used by the tests: it clears the screen, sets the window title, and starts
/// a line of its own, if printed raw.
pub const HOSTILE: &str = "\x1b[2J\x1b]0;x\x07\nFAKE";

/// Whether `out` holds a byte that a terminal would act on: C0 controls other than the newline
/// `allow_newlines` permits and tab, DEL, or a C1 control (raw or UTF-8 encoded).
pub fn has_terminal_controls(out: &[u8], allow_newlines: bool) -> bool {
    let c1 = out
        .windows(2)
        .any(|w| w[0] == 0xc2 && (0x80..=0x9f).contains(&w[1]));
    c1 || out.iter().any(|&b| match b {
        b'\n' => !allow_newlines,
        b'\t' => false,
        0..=0x1f | 0x7f => true,
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_become_visible_and_text_passes() {
        assert_eq!(
            escape(HOSTILE),
            "\\x1b[2J\\x1b]0;x\\x07\\nFAKE",
            "ESC, BEL and the newline are shown, not acted on"
        );
        assert_eq!(escape("kworker/u8:2"), "kworker/u8:2");
        assert_eq!(escape("a\\x1b"), "a\\\\x1b", "a backslash is doubled");
        assert_eq!(escape("tab\there"), "tab\\x09here");
        assert_eq!(escape("del\x7f"), "del\\x7f");
        assert_eq!(escape("nul\0"), "nul\\x00");
        assert_eq!(escape("\u{9b}31m"), "\\xc2\\x9b31m", "C1 CSI as its bytes");
        assert_eq!(escape("\u{85}"), "\\xc2\\x85", "NEL is C1 too");
        assert_eq!(escape(b"worker\xff"), "worker\\xff", "invalid UTF-8");
        assert_eq!(escape(b"\x9b"), "\\x9b", "a lone 8-bit CSI byte");
        assert_eq!(escape(b"\xe2\x86"), "\\xe2\\x86", "a cut-off sequence");
        assert_eq!(escape("µs → 名前 é"), "µs → 名前 é", "printable text stays");
        assert_eq!(escape("\u{a0}"), "\u{a0}", "U+00A0 is past C1");
    }

    #[test]
    fn escaped_output_has_no_control_bytes() {
        // Every single byte and every two-byte sequence.
        let mut all = Vec::new();
        for a in 0..=255u8 {
            all.push(a);
            for b in 0..=255u8 {
                all.extend_from_slice(&[a, b, b' ']);
            }
        }
        let out = escape(&all);
        assert!(!has_terminal_controls(out.as_bytes(), false));
        assert!(!out.contains('\n'));
    }

    #[test]
    fn display_pads_and_skips_the_copy_for_plain_text() {
        assert_eq!(format!("[{:>6}]", Escaped::str("ab")), "[    ab]");
        assert_eq!(format!("[{:<8}]", Escaped::str("a\x1b")), "[a\\x1b   ]");
        assert!(is_plain(b"SIGTERM"));
        assert!(!is_plain(b"a\\b"));
        assert!(!is_plain("é".as_bytes()));
    }

    #[test]
    fn the_test_detector_sees_what_matters() {
        assert!(has_terminal_controls(HOSTILE.as_bytes(), true));
        assert!(has_terminal_controls("x\u{9b}".as_bytes(), true));
        assert!(has_terminal_controls(b"a\nb", false));
        assert!(!has_terminal_controls(b"a\nb\tc", true));
    }

    #[test]
    fn json_escapes_c0_and_keeps_c1_valid() {
        let s = format!("{HOSTILE}\u{9b}\x7f\\");
        let json = serde_json::to_string(&s).unwrap();
        // Every C0 control is escaped by serde_json; the newline as \n, ESC and BEL as \u00XX.
        assert!(!json.bytes().any(|b| b < 0x20), "{json}");
        assert!(json.contains("\\u001b[2J"), "{json}");
        assert!(json.contains("\\u0007"), "{json}");
        assert!(json.contains("\\nFAKE"), "{json}");
        assert!(json.ends_with("\\\\\""), "the backslash is escaped: {json}");
        // C1 and DEL pass unescaped, which RFC 8259 allows: the string reads back the same.
        assert!(json.contains('\u{9b}') && json.contains('\x7f'), "{json}");
        let back: String = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
