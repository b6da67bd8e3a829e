//! A request body forwarded from a client's HTTP/2 stream to a server's, frame by
//! frame as it comes (DATA as the server's window allows, the client's window given
//! back once a frame went on, then the trailers), for as long as the exchange lives.

use bytes::Bytes;
use h2::{Reason, RecvStream, SendStream};

use super::out::reserve;

/// Forwards `from` to `to` until the body ends, either stream breaks, or `stop` says
/// the exchange ended (its reason goes to the server if the body had not).
pub async fn pump(
    mut from: RecvStream,
    mut to: SendStream<Bytes>,
    mut stop: local_sync::oneshot::Receiver<Reason>,
) {
    let reason = {
        let forward = async {
            loop {
                match from.data().await {
                    Some(Ok(mut data)) => {
                        let n = data.len();
                        while !data.is_empty() {
                            let room = reserve(&mut to, data.len()).await.map_err(drop)?;
                            to.send_data(data.split_to(room), false).map_err(drop)?;
                        }
                        let _ = from.flow_control().release_capacity(n);
                    }
                    // The client reset its stream (or its connection died).
                    Some(Err(_)) => return Err(()),
                    None => break,
                }
            }
            match from.trailers().await {
                Ok(Some(t)) => to.send_trailers(t).map_err(drop),
                Ok(None) => to.send_data(Bytes::new(), true).map_err(drop),
                Err(_) => Err(()),
            }
        };
        monoio::select! {
            r = forward => match r {
                Ok(()) => return,
                Err(()) => Reason::CANCEL,
            },
            r = &mut stop => r.unwrap_or(Reason::CANCEL),
        }
    };
    to.send_reset(reason);
}
