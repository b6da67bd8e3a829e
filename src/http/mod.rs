//! HTTP/1.x: the client connection loop (conn), head parsing and rewriting (head),
//! body framing (framing), routing (route), canned replies (reply) and deadline IO (io).

mod conn;
pub mod framing;
pub mod head;
mod io;
pub mod reply;
mod route;

pub use conn::serve;
