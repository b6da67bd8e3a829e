//! The chunked decoder: fed at once or in pieces (split points taken from the input's
//! first bytes), it reaches the same verdict, the same body end and forwards the same
//! bytes; what it forwards is a chunked body it passes unchanged (no framing trailer
//! field is left in it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringlb::http::framing::ChunkedScanner;

type Scan = Result<(usize, bool, Vec<u8>), ()>;

fn scan(data: &[u8], cuts: &[usize]) -> Scan {
    let mut s = ChunkedScanner::new(1000);
    let (mut buf, mut out) = (Vec::new(), Vec::new());
    let (mut used, mut start) = (0, 0);
    for &end in cuts.iter().chain(std::iter::once(&data.len())) {
        let end = end.clamp(start, data.len());
        // Like the connection loop: what the scanner did not take is offered again
        // with the next read.
        buf.extend_from_slice(&data[start..end]);
        start = end;
        let fed = s.feed(&mut buf).map_err(|_| ())?;
        assert!(fed.forward <= fed.used && fed.used <= buf.len());
        out.extend_from_slice(&buf[..fed.forward]);
        used += fed.used;
        buf.drain(..fed.used);
        if s.is_done() {
            break;
        }
    }
    Ok((used, s.is_done(), out))
}

fuzz_target!(|input: &[u8]| {
    let (head, data) = input.split_at(input.len().min(4));
    let mut cuts: Vec<usize> = head.iter().map(|&b| b as usize).collect();
    cuts.sort_unstable();
    let whole = scan(data, &[]);
    let pieces = scan(data, &cuts);
    let bytes = scan(data, &(1..data.len()).collect::<Vec<_>>());
    assert_eq!(whole, pieces);
    assert_eq!(whole, bytes);
    if let Ok((used, true, out)) = whole {
        assert!(used <= data.len());
        let again = scan(&out, &[]);
        assert_eq!(again, Ok((out.len(), true, out)), "forwarded bytes change again");
    }
});
