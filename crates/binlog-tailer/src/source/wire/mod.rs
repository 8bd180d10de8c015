//! The binlog connection: as much of MariaDB's client protocol as a replica
//! needs — log in (optionally over TLS), run a few statements, register as a
//! replica, ask for the binlog (`COM_BINLOG_DUMP`) — and then the events,
//! each read straight from the socket into one buffer.
//!
//! # Why the source has its own connection for the binlog
//! A binlog event can be as large as 1 GiB (a row image of a LONGBLOB, an
//! UPDATE with FULL images of a wide row). A general client assembles each
//! packet in a growing buffer of its own and then copies the event out of
//! it, so an event of N bytes costs two to three times N at its peak, and
//! every small event two allocations. Here the event's size is read from its
//! header in the first packet, a buffer of exactly that size is made (or the
//! previous one reused), and the packets' payloads are read into it in
//! place: an event of N bytes costs N bytes once; a small one costs no
//! allocation at all. The query connections (preflight, positions, lag)
//! still use `mysql_async`; only the stream is read here.
//!
//! # Cancel safety
//! [`BinlogConn::next_event`] keeps the state of a partly read event in the
//! connection, not in its future: dropping the future (a read timeout, a
//! shutdown signal, a poll that found nothing ready) loses no byte.
//!
//! # Protocol
//! Packets are a 3-byte little-endian payload length, a sequence number, and
//! the payload; a payload of 0xFFFFFF bytes continues in the next packet (a
//! final empty packet when the total is an exact multiple). During the dump a
//! payload is `0x00` + one event, `0xFE` (short) at the end of the stream, or
//! `0xFF` + an error (code, `#` + SQL state, message).
//! See <https://mariadb.com/kb/en/0-packet/>,
//! <https://mariadb.com/kb/en/connection/>,
//! <https://mariadb.com/kb/en/com_binlog_dump/> and
//! <https://mariadb.com/kb/en/com_register_slave/>.

mod event;
mod login;
mod tls;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader, ReadBuf};
use tokio::net::TcpStream;

pub use event::Event;
pub use login::login;

use event::{ReadState, Step};

/// Largest payload of one packet; a payload of exactly this size continues
/// in the next packet.
const MAX_PACKET_PAYLOAD: usize = 0xFF_FFFF;

/// The socket's read buffer: small events are parsed out of it without a
/// system call each.
const READ_BUFFER: usize = 64 * 1024;

/// Largest answer accepted outside the stream (handshake, auth, the rows of
/// the few statements the session runs).
const MAX_COMMAND_PAYLOAD: usize = 1024 * 1024;

/// `COM_QUERY`, `COM_BINLOG_DUMP`, `COM_REGISTER_SLAVE`.
const COM_QUERY: u8 = 0x03;
const COM_BINLOG_DUMP: u8 = 0x12;
const COM_REGISTER_SLAVE: u8 = 0x15;

/// What went wrong on the binlog connection.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{0}")]
    Io(#[from] io::Error),
    /// An error packet from the server.
    #[error("server error {code} ({state}): {message}")]
    Server {
        code: u16,
        state: String,
        message: String,
    },
    /// TLS could not be set up: a CA file that does not load, a certificate
    /// that does not verify, a server without TLS.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server wants something this client does not do (an
    /// authentication plugin, a protocol feature).
    #[error("{0}")]
    Unsupported(String),
    /// The server sent bytes that do not follow the protocol.
    #[error("the server broke the client/server protocol: {0}")]
    Protocol(String),
    /// The next event is larger than `source.max_event_bytes`; it was not
    /// read, and the connection cannot be used any further.
    #[error("an event of {size} bytes is larger than source.max_event_bytes ({limit} bytes)")]
    TooLarge { size: u64, limit: usize },
}

impl WireError {
    /// Whether a new connection may succeed where this one failed: network
    /// errors, and the server errors of a server going away.
    pub fn is_transient(&self) -> bool {
        match self {
            WireError::Io(_) => true,
            WireError::Server { code, .. } => super::server_error::is_transient(*code),
            WireError::Tls(_)
            | WireError::Unsupported(_)
            | WireError::Protocol(_)
            | WireError::TooLarge { .. } => false,
        }
    }

    /// The server's error code, if the server sent the error.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            WireError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Reads an error packet (`0xFF`, code, `#` + SQL state, message).
    fn from_err_packet(payload: &[u8]) -> WireError {
        let Some(code) = payload.get(1..3) else {
            return WireError::Protocol("an error packet shorter than its code".into());
        };
        let code = u16::from_le_bytes([code[0], code[1]]);
        let rest = payload.get(3..).unwrap_or_default();
        let (state, message) = match rest.split_first() {
            Some((b'#', tail)) if tail.len() >= 5 => (&tail[..5], &tail[5..]),
            _ => (&b"HY000"[..], rest),
        };
        WireError::Server {
            code,
            state: String::from_utf8_lossy(state).into_owned(),
            message: String::from_utf8_lossy(message).into_owned(),
        }
    }
}

/// A plain or TLS socket.
enum Transport {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A logged-in connection to the server, for the binlog.
pub struct BinlogConn {
    io: BufReader<Transport>,
    /// The sequence number the next packet must carry.
    seq: u8,
    /// The event being read, then the event read.
    buf: Vec<u8>,
    read: ReadState,
    /// `source.max_event_bytes`.
    limit: usize,
    /// The server's id of this connection, from its handshake.
    connection_id: u32,
}

impl BinlogConn {
    fn new(transport: Transport, seq: u8, limit: usize) -> Self {
        Self {
            io: BufReader::with_capacity(READ_BUFFER, transport),
            seq,
            buf: Vec::new(),
            read: ReadState::default(),
            limit,
            connection_id: 0,
        }
    }

    /// The server's id of this connection (`CONNECTION_ID()`, the `ID` of
    /// `information_schema.PROCESSLIST`).
    pub fn connection_id(&self) -> u32 {
        self.connection_id
    }

    /// Writes one command packet (sequence number from 0).
    async fn command(&mut self, payload: &[u8]) -> Result<(), WireError> {
        self.seq = 0;
        self.write_packet(payload).await
    }

    /// Writes one packet with the next sequence number.
    async fn write_packet(&mut self, payload: &[u8]) -> Result<(), WireError> {
        let packet = frame(self.seq, payload)?;
        self.seq = self.seq.wrapping_add(1);
        let socket = self.io.get_mut();
        socket.write_all(&packet).await?;
        socket.flush().await?;
        Ok(())
    }

    /// Reads one whole payload outside the stream (handshake, auth, answers
    /// to statements), at most [`MAX_COMMAND_PAYLOAD`] bytes.
    async fn read_payload(&mut self) -> Result<Vec<u8>, WireError> {
        let mut payload = Vec::new();
        loop {
            let mut header = [0u8; 4];
            self.io.read_exact(&mut header).await?;
            let len = payload_len(&header);
            next_seq(&mut self.seq, header[3])?;
            if payload.len() + len > MAX_COMMAND_PAYLOAD {
                return Err(WireError::Protocol(format!(
                    "an answer longer than {MAX_COMMAND_PAYLOAD} bytes outside the binlog stream"
                )));
            }
            let start = payload.len();
            payload.resize(start + len, 0);
            self.io.read_exact(&mut payload[start..]).await?;
            if len < MAX_PACKET_PAYLOAD {
                return Ok(payload);
            }
        }
    }

    /// Runs a statement that returns no rows (`SET …`).
    ///
    /// # Errors
    /// The server's error, or a broken connection.
    pub async fn execute(&mut self, sql: &str) -> Result<(), WireError> {
        let rows = self.query(sql).await?;
        if rows.is_empty() {
            Ok(())
        } else {
            Err(WireError::Protocol(format!("`{sql}` returned rows")))
        }
    }

    /// Runs a statement and returns its rows as text (`None` for NULL), in
    /// the text protocol. Meant for the few short answers the session needs.
    ///
    /// # Errors
    /// The server's error, or a broken connection.
    pub async fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, WireError> {
        let mut command = Vec::with_capacity(1 + sql.len());
        command.push(COM_QUERY);
        command.extend_from_slice(sql.as_bytes());
        self.command(&command).await?;
        let first = self.read_payload().await?;
        let columns = match first.first() {
            Some(0x00) => return Ok(Vec::new()),
            Some(0xFF) => return Err(WireError::from_err_packet(&first)),
            Some(_) => {
                let mut at = 0;
                lenenc_int(&first, &mut at).ok_or_else(|| {
                    WireError::Protocol("a result set without a column count".into())
                })?
            }
            None => return Err(WireError::Protocol("an empty answer to a statement".into())),
        };
        // Column definitions, then an EOF packet (the client does not ask
        // for CLIENT_DEPRECATE_EOF).
        for _ in 0..columns {
            self.read_payload().await?;
        }
        let eof = self.read_payload().await?;
        if !is_eof(&eof) {
            return Err(WireError::Protocol(
                "no EOF packet after the column definitions".into(),
            ));
        }
        let mut rows = Vec::new();
        loop {
            let row = self.read_payload().await?;
            if is_eof(&row) {
                return Ok(rows);
            }
            if row.first() == Some(&0xFF) {
                return Err(WireError::from_err_packet(&row));
            }
            let mut at = 0;
            let mut values = Vec::new();
            for _ in 0..columns {
                if row.get(at) == Some(&0xFB) {
                    at += 1;
                    values.push(None);
                    continue;
                }
                let len = lenenc_int(&row, &mut at)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| WireError::Protocol("a row value without a length".into()))?;
                let value = row
                    .get(at..at + len)
                    .ok_or_else(|| WireError::Protocol("a row value cut short".into()))?;
                at += len;
                values.push(Some(String::from_utf8_lossy(value).into_owned()));
            }
            rows.push(values);
        }
    }

    /// Registers as a replica (`COM_REGISTER_SLAVE`), so the server lists the
    /// tailer in `SHOW SLAVE HOSTS` and refuses a second reader with the same
    /// id.
    ///
    /// # Errors
    /// The server's error, or a broken connection.
    pub async fn register_replica(&mut self, server_id: u32) -> Result<(), WireError> {
        let mut command = vec![COM_REGISTER_SLAVE];
        command.extend_from_slice(&server_id.to_le_bytes());
        // Host name, user and password (each an empty length-prefixed
        // string), port, replication rank, primary's id.
        command.extend_from_slice(&[0, 0, 0]);
        command.extend_from_slice(&0u16.to_le_bytes());
        command.extend_from_slice(&0u32.to_le_bytes());
        command.extend_from_slice(&0u32.to_le_bytes());
        self.command(&command).await?;
        let answer = self.read_payload().await?;
        match answer.first() {
            Some(0x00) => Ok(()),
            Some(0xFF) => Err(WireError::from_err_packet(&answer)),
            _ => Err(WireError::Protocol(
                "an unexpected answer to COM_REGISTER_SLAVE".into(),
            )),
        }
    }

    /// Asks for the binlog from `file` at `offset` (an empty file name with
    /// offset 4: from the GTID state set in `@slave_connect_state`). The
    /// events then come with [`next_event`](Self::next_event).
    ///
    /// # Errors
    /// An offset the command cannot carry (over 4 GiB), or a broken
    /// connection. The server's refusal arrives as the stream's first item.
    pub async fn dump(&mut self, server_id: u32, file: &str, offset: u64) -> Result<(), WireError> {
        let offset = u32::try_from(offset).map_err(|_| {
            WireError::Unsupported(format!(
                "the binlog offset {offset} is beyond 4 GiB, which COM_BINLOG_DUMP cannot ask \
                 for; start from a GTID state instead (start.from or checkpoint set)"
            ))
        })?;
        let mut command = Vec::with_capacity(11 + file.len());
        command.push(COM_BINLOG_DUMP);
        command.extend_from_slice(&offset.to_le_bytes());
        // Flags: 0, block at the end of the binlog for more.
        command.extend_from_slice(&0u16.to_le_bytes());
        command.extend_from_slice(&server_id.to_le_bytes());
        command.extend_from_slice(file.as_bytes());
        self.command(&command).await?;
        self.read = ReadState::default();
        Ok(())
    }

    /// Waits for the next event: `Ok(true)` once it is whole in the buffer
    /// ([`event`](Self::event) gives it), `Ok(false)` at the end of the
    /// stream. Cancel-safe.
    ///
    /// # Errors
    /// A broken connection, an error from the server (a purged binlog, say),
    /// an event over `source.max_event_bytes`, or bytes that break the
    /// protocol.
    pub async fn next_event(&mut self) -> Result<bool, WireError> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, WireError>> {
        let Self {
            io,
            seq,
            buf,
            read,
            limit,
            ..
        } = self;
        let step = std::task::ready!(read.poll_message(io, cx, seq, buf, *limit))?;
        Poll::Ready(match step {
            Step::Event => Ok(true),
            Step::Control => match self.buf.first() {
                Some(0xFF) => Err(WireError::from_err_packet(&self.buf)),
                _ if is_eof(&self.buf) => Ok(false),
                Some(marker) => Err(WireError::Protocol(format!(
                    "a packet starting with {marker:#04x} in the binlog stream"
                ))),
                None => Err(WireError::Protocol(
                    "an empty packet in the binlog stream".into(),
                )),
            },
        })
    }

    /// The event [`next_event`](Self::next_event) read last.
    ///
    /// `crc` says whether events carry a CRC32 (the last
    /// FORMAT_DESCRIPTION's algorithm); see [`Event::new`].
    pub fn event(&self, crc: bool) -> Result<Event<'_>, WireError> {
        Event::new(&self.buf, crc)
    }
}

/// One packet: the payload's length (3 bytes), the sequence number, the
/// payload, which must fit in one packet (commands do).
fn frame(seq: u8, payload: &[u8]) -> Result<Vec<u8>, WireError> {
    let len = payload.len();
    if len >= MAX_PACKET_PAYLOAD {
        return Err(WireError::Protocol(format!(
            "a command of {len} bytes is too long for one packet"
        )));
    }
    let mut packet = Vec::with_capacity(4 + len);
    packet.extend_from_slice(&u32::try_from(len).unwrap_or(0).to_le_bytes()[..3]);
    packet.push(seq);
    packet.extend_from_slice(payload);
    Ok(packet)
}

/// The payload length a packet header gives.
fn payload_len(header: &[u8; 4]) -> usize {
    usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16
}

/// Checks a packet's sequence number against the one due, and moves on.
fn next_seq(due: &mut u8, got: u8) -> Result<(), WireError> {
    if got != *due {
        return Err(WireError::Protocol(format!(
            "packet sequence number {got} where {due} was due"
        )));
    }
    *due = got.wrapping_add(1);
    Ok(())
}

/// Whether a payload is an EOF packet (`0xFE`, shorter than 9 bytes).
fn is_eof(payload: &[u8]) -> bool {
    payload.first() == Some(&0xFE) && payload.len() < 9
}

/// Reads a length-encoded integer at `*at`, moving `*at` past it.
fn lenenc_int(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let first = *bytes.get(*at)?;
    let (width, value) = match first {
        0..=0xFA => (0, u64::from(first)),
        0xFC => (2, 0),
        0xFD => (3, 0),
        0xFE => (8, 0),
        _ => return None,
    };
    if width == 0 {
        *at += 1;
        return Some(value);
    }
    let digits = bytes.get(*at + 1..*at + 1 + width)?;
    *at += 1 + width;
    Some(
        digits
            .iter()
            .rev()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt as _;

    #[test]
    fn length_encoded_integers() {
        let bytes = [
            0x05, 0xFC, 0x34, 0x12, 0xFD, 1, 2, 3, 0xFE, 1, 0, 0, 0, 0, 0, 0, 0x80,
        ];
        let mut at = 0;
        assert_eq!(lenenc_int(&bytes, &mut at), Some(5));
        assert_eq!(lenenc_int(&bytes, &mut at), Some(0x1234));
        assert_eq!(lenenc_int(&bytes, &mut at), Some(0x030201));
        assert_eq!(lenenc_int(&bytes, &mut at), Some(0x8000_0000_0000_0001));
        assert_eq!(at, bytes.len());
        assert_eq!(lenenc_int(&bytes, &mut at), None, "past the end");
        let mut at = 0;
        assert_eq!(lenenc_int(&[0xFC, 1], &mut at), None, "cut short");
        assert_eq!(lenenc_int(&[0xFF], &mut at), None, "not an integer");
    }

    #[test]
    fn error_packets_are_read_with_and_without_a_state() {
        let mut packet = vec![0xFF, 0xD4, 0x04, b'#'];
        packet
            .extend_from_slice(b"HY000Could not find first log file name in binary log index file");
        match WireError::from_err_packet(&packet) {
            WireError::Server {
                code,
                state,
                message,
            } => {
                assert_eq!(code, 1236);
                assert_eq!(state, "HY000");
                assert!(message.starts_with("Could not find"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let error = WireError::from_err_packet(&[0xFF, 0x1D, 0x04, b'o', b'k']);
        assert!(
            matches!(error, WireError::Server { code: 1053, ref message, .. } if message == "ok")
        );
        assert!(error.is_transient(), "a server shutting down");
        assert!(matches!(
            WireError::from_err_packet(&[0xFF]),
            WireError::Protocol(_)
        ));
    }

    /// The reading side of a loopback connection as a binlog connection
    /// after `COM_BINLOG_DUMP` (the server's packets count from 1), and the
    /// writing side standing in for the server.
    async fn pair(limit: usize) -> (BinlogConn, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let conn = BinlogConn::new(Transport::Plain(client.unwrap()), 1, limit);
        (conn, server.unwrap().0)
    }

    /// An event of `size` bytes: a header that says so, then a pattern.
    fn event(kind: u8, size: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; size];
        bytes[4] = kind;
        bytes[9..13].copy_from_slice(&u32::try_from(size).unwrap().to_le_bytes());
        for (i, b) in bytes.iter_mut().enumerate().skip(19) {
            *b = (i % 251) as u8;
        }
        bytes
    }

    /// A payload as packets (full-size ones continued, an empty one after
    /// an exact multiple), numbered from `*seq`.
    fn packets(seq: &mut u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut chunks = payload.chunks(MAX_PACKET_PAYLOAD).peekable();
        loop {
            let chunk = chunks.next().unwrap_or_default();
            out.extend_from_slice(&u32::try_from(chunk.len()).unwrap().to_le_bytes()[..3]);
            out.push(*seq);
            *seq = seq.wrapping_add(1);
            out.extend_from_slice(chunk);
            if chunk.len() < MAX_PACKET_PAYLOAD {
                return out;
            }
        }
    }

    fn event_packets(seq: &mut u8, event: &[u8]) -> Vec<u8> {
        let mut payload = vec![0u8];
        payload.extend_from_slice(event);
        packets(seq, &payload)
    }

    #[tokio::test]
    async fn events_arrive_whole_even_when_reads_are_dropped_midway() {
        let (mut conn, mut server) = pair(4 << 20).await;
        let events: Vec<Vec<u8>> = [19, 20, 23, 200, 1_500_000, 31]
            .iter()
            .map(|n| event(16, *n))
            .collect();
        let mut seq = 1;
        let mut wire = Vec::new();
        for e in &events {
            wire.extend(event_packets(&mut seq, e));
        }
        wire.extend(packets(&mut seq, &[0xFE, 0, 0, 2, 0]));
        let writer = tokio::spawn(async move {
            // A byte at a time at first, so reads stop in every field.
            let (slow, fast) = wire.split_at(400);
            for b in slow {
                server.write_all(&[*b]).await.unwrap();
                server.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            server.write_all(fast).await.unwrap();
            server
        });
        let mut read = Vec::new();
        loop {
            // A future dropped whenever it is not ready at once.
            match conn.next_event().now_or_never() {
                None => tokio::time::sleep(std::time::Duration::from_micros(50)).await,
                Some(Ok(true)) => {
                    let e = conn.event(false).unwrap();
                    assert_eq!(e.event_size() as usize, e.body().len() + 19);
                    read.push(conn.buf.clone());
                }
                Some(Ok(false)) => break,
                Some(Err(e)) => panic!("{e}"),
            }
        }
        writer.await.unwrap();
        assert_eq!(read, events);
        assert!(conn.buf.capacity() < 1024, "the 1.5 MB buffer was let go");
    }

    #[tokio::test]
    async fn events_across_packets_and_on_exact_packet_boundaries() {
        // 0xFFFFFF - 1 bytes: with its marker exactly one full packet, then
        // an empty one; the others span two and three packets.
        let sizes = [
            MAX_PACKET_PAYLOAD - 1,
            MAX_PACKET_PAYLOAD,
            2 * MAX_PACKET_PAYLOAD + 7,
        ];
        let (mut conn, mut server) = pair(64 << 20).await;
        let events: Vec<Vec<u8>> = sizes.iter().map(|n| event(23, *n)).collect();
        let mut seq = 1;
        let mut wire = Vec::new();
        for e in &events {
            wire.extend(event_packets(&mut seq, e));
        }
        let writer = tokio::spawn(async move {
            server.write_all(&wire).await.unwrap();
            server
        });
        for expected in &events {
            assert!(conn.next_event().await.unwrap());
            assert_eq!(conn.buf.len(), expected.len());
            assert!(
                conn.buf == *expected,
                "an event of {} bytes",
                expected.len()
            );
            assert_eq!(conn.buf.capacity(), expected.len(), "sized once, exactly");
        }
        drop(writer.await.unwrap());
        assert!(
            matches!(conn.next_event().await, Err(WireError::Io(_))),
            "closed"
        );
    }

    /// Reads one item after `bytes` were sent.
    async fn first_item(limit: usize, bytes: Vec<u8>) -> Result<bool, WireError> {
        let (mut conn, mut server) = pair(limit).await;
        server.write_all(&bytes).await.unwrap();
        server.shutdown().await.unwrap();
        conn.next_event().await
    }

    #[tokio::test]
    async fn refusals_and_malformed_streams_are_errors_not_panics() {
        let mut seq = 1;
        let big = event_packets(&mut seq, &event(16, 5000));
        let result = first_item(4096, big).await;
        assert!(
            matches!(
                result,
                Err(WireError::TooLarge {
                    size: 5000,
                    limit: 4096
                })
            ),
            "{result:?}"
        );

        let mut err = vec![0xFF, 0xD4, 0x04, b'#'];
        err.extend_from_slice(b"HY000Could not find GTID state requested by slave");
        let result = first_item(4096, packets(&mut 1, &err)).await;
        assert!(
            matches!(result, Err(WireError::Server { code: 1236, .. })),
            "{result:?}"
        );

        let result = first_item(4096, event_packets(&mut 5, &event(16, 40))).await;
        assert!(
            matches!(result, Err(WireError::Protocol(_))),
            "out of sequence: {result:?}"
        );

        // The header announces 100 bytes; the packet holds 40 and ends.
        let mut short = event(16, 40);
        short[9..13].copy_from_slice(&100u32.to_le_bytes());
        let result = first_item(4096, event_packets(&mut 1, &short)).await;
        assert!(
            matches!(result, Err(WireError::Protocol(_))),
            "short: {result:?}"
        );

        // The header announces 30 bytes; the packet holds 60.
        let mut long = event(16, 60);
        long[9..13].copy_from_slice(&30u32.to_le_bytes());
        let result = first_item(4096, event_packets(&mut 1, &long)).await;
        assert!(
            matches!(result, Err(WireError::Protocol(_))),
            "long: {result:?}"
        );

        // An event header that claims fewer bytes than a header.
        let mut tiny = event(16, 40);
        tiny[9..13].copy_from_slice(&5u32.to_le_bytes());
        let result = first_item(4096, event_packets(&mut 1, &tiny)).await;
        assert!(
            matches!(result, Err(WireError::Protocol(_))),
            "tiny: {result:?}"
        );

        // Cut off mid-event by the server going away.
        let mut cut = event_packets(&mut 1, &event(16, 400));
        cut.truncate(200);
        let result = first_item(4096, cut).await;
        assert!(
            matches!(result, Err(ref e) if e.is_transient()),
            "cut: {result:?}"
        );

        let result = first_item(4096, packets(&mut 1, &[0x07, 1, 2])).await;
        assert!(
            matches!(result, Err(WireError::Protocol(_))),
            "unknown marker: {result:?}"
        );
    }
}
