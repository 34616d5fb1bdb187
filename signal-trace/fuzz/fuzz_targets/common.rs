//! Helpers shared by the text-parsing targets.

/// The valid UTF-8 prefix of a fuzz input: what reading a text file would keep of it.
pub fn text(data: &[u8]) -> &str {
    match std::str::from_utf8(data) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&data[..e.valid_up_to()]).expect("valid prefix"),
    }
}
