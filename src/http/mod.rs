//! HTTP/1.x: the client connection loop and request side (conn), the response side
//! (response), head parsing and rewriting (head), body framing (framing), routing
//! (route), canned replies (reply), WebSocket tunnels (tunnel), local answers and head edits (local),
//! deadline IO (io), the deadlines of connections waiting for a request (idle), and the
//! free lists of connection buffers and state (bufpool).

mod bufpool;
pub(crate) use bufpool::{init as init_memory, trim as trim_memory};
mod conn;
pub mod framing;
pub mod head;
mod idle;
pub(crate) use idle::wake_expired as wake_idle;
mod io;
pub(crate) use io::{set_epoll_driver, Timer};
mod local;
pub mod reply;
mod response;
mod route;
mod tunnel;

pub use conn::serve;
