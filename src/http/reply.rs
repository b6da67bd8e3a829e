//! Replies the balancer writes itself, as static bytes: nothing is formatted or
//! allocated to refuse a request.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    BadRequest,
    RequestTimeout,
    HeaderTooLarge,
    UriTooLong,
    BadGateway,
    ServiceUnavailable,
    GatewayTimeout,
}

// `concat!` cannot compute lengths, so each reply is written out with its length.
// 400 and 408 come from HAProxy's HTTP/1 layer, which sends these bytes as they are
// (never a proxy's `errorfile`); the others are its stream's pages.
const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad request\r\nContent-length: 90\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Type: text/html\r\n\r\n<html><body><h1>400 Bad request</h1>\nYour browser sent an invalid request.\n</body></html>\n";
const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Time-out\r\nContent-length: 110\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Type: text/html\r\n\r\n<html><body><h1>408 Request Time-out</h1>\nYour browser didn't send a complete request in time.\n</body></html>\n";
const HEADER_TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/html\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Length: 103\r\n\r\n<html><body><h1>431 Request Header Fields Too Large</h1>\nThe request head is too large.\n</body></html>\n";
const URI_TOO_LONG: &[u8] = b"HTTP/1.1 414 Request-URI Too Long\r\nContent-Type: text/html\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Length: 91\r\n\r\n<html><body><h1>414 Request-URI Too Long</h1>\nThe request line is too long.\n</body></html>\n";
const BAD_GATEWAY: &[u8] = b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Length: 107\r\n\r\n<html><body><h1>502 Bad Gateway</h1>\nThe server returned an invalid or incomplete response.\n</body></html>\n";
const SERVICE_UNAVAILABLE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Length: 107\r\n\r\n<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n";
const GATEWAY_TIMEOUT: &[u8] = b"HTTP/1.1 504 Gateway Time-out\r\nContent-Type: text/html\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Length: 92\r\n\r\n<html><body><h1>504 Gateway Time-out</h1>\nThe server didn't respond in time.\n</body></html>\n";

pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl Reply {
    /// The termination state a request answered with this reply ends in, unless the
    /// way it came about said more (a queue timeout is `sQ`, not `SC`).
    pub fn term(self) -> crate::record::Term {
        use crate::record::Term;
        match self {
            Reply::BadRequest => Term::CLIENT_REQUEST,
            Reply::RequestTimeout => Term::CLIENT_TIMEOUT_REQUEST,
            Reply::HeaderTooLarge | Reply::UriTooLong => Term::PROXY_REQUEST,
            Reply::ServiceUnavailable => Term::SERVER_CONNECT,
            Reply::GatewayTimeout => Term::SERVER_TIMEOUT_HEADERS,
            Reply::BadGateway => Term::SERVER_HEADERS,
        }
    }

    pub fn bytes(self) -> &'static [u8] {
        match self {
            Reply::BadRequest => BAD_REQUEST,
            Reply::RequestTimeout => REQUEST_TIMEOUT,
            Reply::HeaderTooLarge => HEADER_TOO_LARGE,
            Reply::UriTooLong => URI_TOO_LONG,
            Reply::BadGateway => BAD_GATEWAY,
            Reply::ServiceUnavailable => SERVICE_UNAVAILABLE,
            Reply::GatewayTimeout => GATEWAY_TIMEOUT,
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Reply::BadRequest => 400,
            Reply::RequestTimeout => 408,
            Reply::HeaderTooLarge => 431,
            Reply::UriTooLong => 414,
            Reply::BadGateway => 502,
            Reply::ServiceUnavailable => 503,
            Reply::GatewayTimeout => 504,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_lengths_are_right() {
        for r in [
            Reply::BadRequest,
            Reply::RequestTimeout,
            Reply::HeaderTooLarge,
            Reply::UriTooLong,
            Reply::BadGateway,
            Reply::ServiceUnavailable,
            Reply::GatewayTimeout,
        ] {
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let mut res = httparse::Response::new(&mut headers);
            let bytes = r.bytes();
            let n = match res.parse(bytes).unwrap() {
                httparse::Status::Complete(n) => n,
                _ => panic!("partial"),
            };
            assert_eq!(res.code, Some(r.status()));
            let cl = res
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| {
                    std::str::from_utf8(h.value)
                        .unwrap()
                        .parse::<usize>()
                        .unwrap()
                })
                .unwrap();
            assert_eq!(cl, bytes.len() - n, "{r:?}");
        }
    }
}
