//! The rent-model I/O traits for a type that maps an HTTP/2 stream to HTTP/1.1
//! bytes: its `read_raw(dst, room)` and `write_raw(src)` (each completing or staying
//! pending whole, so a caller may drop them) and `finish()` (the writer is done) are
//! all it needs. A macro, not a blanket impl: the traits are monoio's.

/// Implements `AsyncReadRent` and `AsyncWriteRent` for `$t` over its `read_raw`,
/// `write_raw` and `finish`.
macro_rules! rent_io {
    ($t:ty) => {
        impl monoio::io::AsyncReadRent for $t {
            async fn read<T: monoio::buf::IoBufMut>(
                &mut self,
                mut buf: T,
            ) -> monoio::BufResult<usize, T> {
                let (dst, room) = (buf.write_ptr(), buf.bytes_total());
                let res = self.read_raw(dst, room).await;
                if let Ok(n) = res {
                    // SAFETY: `read_raw` initialised the first `n` bytes.
                    unsafe { buf.set_init(n) };
                }
                (res, buf)
            }

            async fn readv<T: monoio::buf::IoVecBufMut>(
                &mut self,
                mut buf: T,
            ) -> monoio::BufResult<usize, T> {
                use monoio::buf::IoBufMut;
                // SAFETY: the iovecs stay valid while `buf` is held here.
                let Some(mut raw) = (unsafe { monoio::buf::RawBuf::new_from_iovec_mut(&mut buf) })
                else {
                    return (Ok(0), buf);
                };
                let res = self.read_raw(raw.write_ptr(), raw.bytes_total()).await;
                if let Ok(n) = res {
                    // SAFETY: `n` bytes of the first iovec were written.
                    unsafe { buf.set_init(n) };
                }
                (res, buf)
            }
        }

        impl monoio::io::AsyncWriteRent for $t {
            async fn write<T: monoio::buf::IoBuf>(
                &mut self,
                buf: T,
            ) -> monoio::BufResult<usize, T> {
                // SAFETY: `buf` owns `bytes_init` initialised bytes at `read_ptr`.
                let src = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
                let res = self.write_raw(src).await;
                (res, buf)
            }

            async fn writev<T: monoio::buf::IoVecBuf>(
                &mut self,
                buf: T,
            ) -> monoio::BufResult<usize, T> {
                use monoio::buf::IoBuf;
                // SAFETY: the iovecs stay valid while `buf` is held here.
                let res = match unsafe { monoio::buf::RawBuf::new_from_iovec(&buf) } {
                    Some(raw) => {
                        // SAFETY: the first iovec holds `bytes_init` bytes.
                        let src =
                            unsafe { std::slice::from_raw_parts(raw.read_ptr(), raw.bytes_init()) };
                        self.write_raw(src).await
                    }
                    None => Ok(0),
                };
                (res, buf)
            }

            async fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }

            async fn shutdown(&mut self) -> std::io::Result<()> {
                self.finish();
                Ok(())
            }
        }
    };
}

pub(crate) use rent_io;
