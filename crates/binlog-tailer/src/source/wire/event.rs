//! Reading one binlog event from the stream into the connection's buffer,
//! and the event as the session sees it.
//!
//! The first packet of an event starts with `0x00` and the event's 19-byte
//! header, whose `event_size` says how many bytes follow in all: the buffer
//! is sized to exactly that (or reused, when it is large enough) before the
//! rest of the payload is read into it, packet after packet. A buffer grown
//! for a large event is let go at the next event that fits in
//! [`RETAIN`] bytes, so a 500 MiB event costs 500 MiB only while it is read
//! and handed on.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, BufReader, ReadBuf};

use super::{next_seq, payload_len, Transport, WireError, MAX_PACKET_PAYLOAD};
use crate::decode::{COMMON_HEADER_LEN, FORMAT_DESCRIPTION_EVENT};

const HEADER_LEN: usize = COMMON_HEADER_LEN as usize;

/// The `0x00` marker and the event header: what is read before the event's
/// size is known.
const LEAD: usize = 1 + HEADER_LEN;

/// A buffer larger than this is let go once a smaller event comes.
const RETAIN: usize = 1024 * 1024;

/// Largest packet accepted that is not an event (end of stream, error).
const MAX_CONTROL: usize = 64 * 1024;

/// `LOG_EVENT_BINLOG_IN_USE_F`: set in a FORMAT_DESCRIPTION while its file is
/// open; the checksum is computed without it.
const BINLOG_IN_USE: u16 = 0x1;

/// CRC32 length, and the checksum-algorithm byte a FORMAT_DESCRIPTION always
/// carries before it.
const CRC_LEN: usize = 4;
const ALG_LEN: usize = 1;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a packet header (length, sequence number).
    #[default]
    Header,
    /// Reading the first bytes of a message: marker and event header.
    Lead,
    /// Reading the rest of a packet's payload into the buffer.
    Payload,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Kind {
    #[default]
    Event,
    /// Not an event: an end-of-stream or error packet, kept whole.
    Control,
}

/// What a finished read holds in the buffer.
pub(super) enum Step {
    Event,
    Control,
}

/// Where the read of the current message stands; lives in the connection so
/// that a dropped read future loses nothing.
#[derive(Debug, Default)]
pub(super) struct ReadState {
    phase: Phase,
    header: [u8; 4],
    header_filled: usize,
    /// Payload length of the first packet of the message.
    packet_len: usize,
    lead: [u8; LEAD],
    lead_len: usize,
    lead_filled: usize,
    kind: Kind,
    /// Bytes of the buffer filled so far.
    filled: usize,
    /// Where the payload of the packet being read ends in the buffer.
    packet_end: usize,
    /// The packet being read is full size: the message goes on in the next.
    more: bool,
}

impl ReadState {
    /// Reads until one message (an event, or a control packet) is whole in
    /// `buf`.
    pub(super) fn poll_message(
        &mut self,
        io: &mut BufReader<Transport>,
        cx: &mut Context<'_>,
        seq: &mut u8,
        buf: &mut Vec<u8>,
        limit: usize,
    ) -> Poll<Result<Step, WireError>> {
        loop {
            match self.phase {
                Phase::Header => {
                    ready!(fill(io, cx, &mut self.header, &mut self.header_filled))?;
                    self.header_filled = 0;
                    let len = payload_len(&self.header);
                    next_seq(seq, self.header[3])?;
                    let continuation = self.more;
                    self.more = len == MAX_PACKET_PAYLOAD;
                    if continuation {
                        let end = self.filled + len;
                        if end > buf.len() {
                            return Poll::Ready(Err(longer_than_announced(buf.len())));
                        }
                        self.packet_end = end;
                        self.phase = Phase::Payload;
                    } else {
                        if len == 0 {
                            return Poll::Ready(Err(WireError::Protocol(
                                "an empty packet in the binlog stream".into(),
                            )));
                        }
                        self.packet_len = len;
                        self.lead_len = len.min(LEAD);
                        self.lead_filled = 0;
                        self.phase = Phase::Lead;
                    }
                }
                Phase::Lead => {
                    let lead_len = self.lead_len;
                    ready!(fill(
                        io,
                        cx,
                        &mut self.lead[..lead_len],
                        &mut self.lead_filled
                    ))?;
                    let rest = self.packet_len - lead_len;
                    if self.lead[0] == 0x00 && lead_len == LEAD {
                        let size = u32::from_le_bytes([
                            self.lead[10],
                            self.lead[11],
                            self.lead[12],
                            self.lead[13],
                        ]);
                        let size = usize::try_from(size).unwrap_or(usize::MAX);
                        if size < HEADER_LEN {
                            return Poll::Ready(Err(WireError::Protocol(format!(
                                "an event of {size} bytes, shorter than its own header"
                            ))));
                        }
                        if size > limit {
                            return Poll::Ready(Err(WireError::TooLarge {
                                size: size as u64,
                                limit,
                            }));
                        }
                        // A buffer too small is let go before the new one
                        // is made (never both at once), and a large one
                        // once a small event comes.
                        if size > buf.capacity() || (buf.capacity() > RETAIN && size <= RETAIN) {
                            *buf = Vec::new();
                            buf.reserve_exact(size);
                        }
                        buf.clear();
                        buf.resize(size, 0);
                        buf[..HEADER_LEN].copy_from_slice(&self.lead[1..]);
                        self.filled = HEADER_LEN;
                        self.packet_end = HEADER_LEN + rest;
                        if self.packet_end > size {
                            return Poll::Ready(Err(longer_than_announced(size)));
                        }
                        self.kind = Kind::Event;
                    } else {
                        if self.more || self.packet_len > MAX_CONTROL {
                            return Poll::Ready(Err(WireError::Protocol(format!(
                                "a packet of {} bytes starting with {:#04x} in the binlog stream",
                                self.packet_len, self.lead[0]
                            ))));
                        }
                        buf.clear();
                        buf.extend_from_slice(&self.lead[..lead_len]);
                        buf.resize(self.packet_len, 0);
                        self.filled = lead_len;
                        self.packet_end = self.packet_len;
                        self.kind = Kind::Control;
                    }
                    self.phase = Phase::Payload;
                }
                Phase::Payload => {
                    let end = self.packet_end;
                    ready!(fill(io, cx, &mut buf[..end], &mut self.filled))?;
                    self.phase = Phase::Header;
                    if self.more {
                        continue;
                    }
                    return Poll::Ready(match self.kind {
                        Kind::Control => Ok(Step::Control),
                        Kind::Event if self.filled == buf.len() => Ok(Step::Event),
                        Kind::Event => Err(WireError::Protocol(format!(
                            "an event ended after {} of the {} bytes its header announces",
                            self.filled,
                            buf.len()
                        ))),
                    });
                }
            }
        }
    }
}

fn longer_than_announced(size: usize) -> WireError {
    WireError::Protocol(format!(
        "the packets of an event hold more than the {size} bytes its header announces"
    ))
}

/// Reads into `dst[*filled..]` until it is full, counting in `*filled`.
fn fill(
    io: &mut BufReader<Transport>,
    cx: &mut Context<'_>,
    dst: &mut [u8],
    filled: &mut usize,
) -> Poll<io::Result<()>> {
    while *filled < dst.len() {
        let mut read = ReadBuf::new(&mut dst[*filled..]);
        ready!(Pin::new(&mut *io).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        if n == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
        *filled += n;
    }
    Poll::Ready(Ok(()))
}

/// One binlog event: its header fields, its body, its checksum.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    bytes: &'a [u8],
    body_end: usize,
    checksum: Option<u32>,
}

impl<'a> Event<'a> {
    /// The event in `bytes` (header, body, then the CRC32 when `crc` says
    /// events carry one). A FORMAT_DESCRIPTION always ends in its checksum
    /// algorithm and a CRC32, whatever `crc` says.
    ///
    /// # Errors
    /// An event too short for its header and checksum.
    pub fn new(bytes: &'a [u8], crc: bool) -> Result<Self, WireError> {
        let short = || {
            WireError::Protocol(format!(
                "an event of {} bytes, too short for its header and checksum",
                bytes.len()
            ))
        };
        let kind = *bytes.get(4).ok_or_else(short)?;
        let trailer = if kind == FORMAT_DESCRIPTION_EVENT {
            ALG_LEN + CRC_LEN
        } else if crc {
            CRC_LEN
        } else {
            0
        };
        let body_end = bytes
            .len()
            .checked_sub(trailer)
            .filter(|end| *end >= HEADER_LEN)
            .ok_or_else(short)?;
        let checksum = (trailer >= CRC_LEN).then(|| {
            let at = bytes.len() - CRC_LEN;
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        });
        Ok(Self {
            bytes,
            body_end,
            checksum,
        })
    }

    fn u32_at(&self, at: usize) -> u32 {
        u32::from_le_bytes([
            self.bytes[at],
            self.bytes[at + 1],
            self.bytes[at + 2],
            self.bytes[at + 3],
        ])
    }

    pub fn timestamp(&self) -> u32 {
        self.u32_at(0)
    }

    pub fn event_type(&self) -> u8 {
        self.bytes[4]
    }

    pub fn server_id(&self) -> u32 {
        self.u32_at(5)
    }

    pub fn event_size(&self) -> u32 {
        self.u32_at(9)
    }

    /// `end_log_pos` as the header has it (0 inside transactions on 11.x;
    /// see `super::super::ends`).
    pub fn log_pos(&self) -> u32 {
        self.u32_at(13)
    }

    pub fn flags(&self) -> u16 {
        u16::from_le_bytes([self.bytes[17], self.bytes[18]])
    }

    /// The bytes after the header, without the checksum (and, for a
    /// FORMAT_DESCRIPTION, without its checksum-algorithm byte): what
    /// [`crate::decode`] reads.
    pub fn body(&self) -> &'a [u8] {
        &self.bytes[HEADER_LEN..self.body_end]
    }

    /// A FORMAT_DESCRIPTION's checksum algorithm: whether the events after
    /// it carry a CRC32 (algorithm 1).
    pub fn announces_crc32(&self) -> Option<bool> {
        (self.event_type() == FORMAT_DESCRIPTION_EVENT).then(|| self.bytes[self.body_end] == 1)
    }

    /// Whether the stored CRC32 matches the event's bytes (an event without
    /// one matches).
    pub fn checksum_matches(&self) -> bool {
        let Some(stored) = self.checksum else {
            return true;
        };
        let covered = &self.bytes[..self.bytes.len() - CRC_LEN];
        let flags = self.flags();
        let computed =
            if self.event_type() == FORMAT_DESCRIPTION_EVENT && flags & BINLOG_IN_USE != 0 {
                let mut hasher = crc32fast::Hasher::new();
                hasher.update(&covered[..17]);
                hasher.update(&(flags & !BINLOG_IN_USE).to_le_bytes());
                hasher.update(&covered[HEADER_LEN..]);
                hasher.finalize()
            } else {
                crc32fast::hash(covered)
            };
        computed == stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: u8, flags: u16, body: &[u8], crc: bool) -> Vec<u8> {
        let size = HEADER_LEN + body.len() + if crc { CRC_LEN } else { 0 };
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        bytes.push(kind);
        bytes.extend_from_slice(&7u32.to_le_bytes());
        bytes.extend_from_slice(&u32::try_from(size).unwrap().to_le_bytes());
        bytes.extend_from_slice(&4096u32.to_le_bytes());
        bytes.extend_from_slice(&flags.to_le_bytes());
        bytes.extend_from_slice(body);
        if crc {
            let mut covered = bytes.clone();
            if kind == FORMAT_DESCRIPTION_EVENT {
                covered[17] &= !1;
            }
            bytes.extend_from_slice(&crc32fast::hash(&covered).to_le_bytes());
        }
        bytes
    }

    #[test]
    fn header_fields_body_and_checksum() {
        let bytes = event(16, 0, b"xid-body", true);
        let e = Event::new(&bytes, true).unwrap();
        assert_eq!(e.timestamp(), 1_700_000_000);
        assert_eq!(e.event_type(), 16);
        assert_eq!(e.server_id(), 7);
        assert_eq!(e.event_size() as usize, bytes.len());
        assert_eq!(e.log_pos(), 4096);
        assert_eq!(e.body(), b"xid-body");
        assert!(e.checksum_matches());
        assert_eq!(e.announces_crc32(), None);

        let mut corrupt = bytes.clone();
        corrupt[HEADER_LEN] ^= 0x20;
        assert!(!Event::new(&corrupt, true).unwrap().checksum_matches());

        let plain = event(16, 0, b"xid-body", false);
        let e = Event::new(&plain, false).unwrap();
        assert_eq!(e.body(), b"xid-body");
        assert!(e.checksum_matches(), "nothing to check");
    }

    #[test]
    fn a_format_description_in_use_is_checked_without_its_in_use_flag() {
        // Body, then the algorithm byte (1: CRC32); the CRC covers both.
        let bytes = event(FORMAT_DESCRIPTION_EVENT, 1, b"fde-body\x01", true);
        for crc in [true, false] {
            let e = Event::new(&bytes, crc).unwrap();
            assert_eq!(e.body(), b"fde-body", "without algorithm byte and CRC");
            assert_eq!(e.announces_crc32(), Some(true));
            assert!(e.checksum_matches());
        }
        let off = event(FORMAT_DESCRIPTION_EVENT, 0, b"fde-body\x00", true);
        assert_eq!(
            Event::new(&off, true).unwrap().announces_crc32(),
            Some(false)
        );
    }

    #[test]
    fn events_too_short_are_errors_not_panics() {
        for len in 0..HEADER_LEN + CRC_LEN {
            let mut bytes = event(16, 0, &[], false);
            bytes.resize(len, 0);
            if len > 4 {
                bytes[4] = 16;
            }
            let result = Event::new(&bytes, true);
            assert!(
                (len >= HEADER_LEN + CRC_LEN) == result.is_ok(),
                "{len} bytes: {result:?}"
            );
        }
        let mut fde = event(FORMAT_DESCRIPTION_EVENT, 0, &[], false);
        fde.extend_from_slice(&[1, 0, 0]);
        assert!(
            Event::new(&fde, false).is_err(),
            "no room for algorithm and CRC"
        );
    }
}
