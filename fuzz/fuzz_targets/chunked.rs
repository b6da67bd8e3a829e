//! The chunked decoder: fed at once or in pieces (split points taken from the input's
//! first bytes), it reaches the same verdict and the same body end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringlb::http::framing::ChunkedScanner;

fn scan(data: &[u8], cuts: &[usize]) -> Result<(usize, bool), ()> {
    let mut s = ChunkedScanner::new(1000);
    let mut used = 0;
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&data.len())) {
        let end = end.clamp(start, data.len());
        // Like the connection loop: what the scanner did not take is offered again
        // with the next read.
        let n = s.feed(&data[used..end]).map_err(|_| ())?;
        used += n;
        start = end;
        if s.is_done() {
            break;
        }
    }
    Ok((used, s.is_done()))
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
    if let Ok((used, _)) = whole {
        assert!(used <= data.len());
    }
});
