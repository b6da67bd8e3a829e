//! HTTP/2 written by hand, for tests that need frames the h2 crate would not send:
//! the client preface, a frame of any type, and HPACK blocks of literal fields.

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// A frame: its 9-byte header, then `payload`.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK block of literal fields (not indexed, no Huffman): any name and value
/// bytes go through as they are.
pub fn block_bytes(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (n, v) in fields {
        assert!(n.len() < 127 && v.len() < 127);
        b.push(0);
        b.push(n.len() as u8);
        b.extend_from_slice(n);
        b.push(v.len() as u8);
        b.extend_from_slice(v);
    }
    b
}

/// `block_bytes` of text fields.
pub fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let fields: Vec<(&[u8], &[u8])> = fields
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect();
    block_bytes(&fields)
}
