//! Logging in: the server's handshake, TLS when `source.tls` asks for it,
//! the handshake response, and `mysql_native_password` (MariaDB's default
//! authentication, the one the tailer's user is documented with), following
//! an authentication switch if the server asks for one.
//! See <https://mariadb.com/kb/en/connection/>.

use sha1::{Digest as _, Sha1};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::{frame, next_seq, payload_len, tls, BinlogConn, Transport, WireError};
use crate::config::{Config, TlsMode};

// Capability flags (https://mariadb.com/kb/en/connection/#capabilities).
const CLIENT_LONG_PASSWORD: u32 = 1;
const CLIENT_LONG_FLAG: u32 = 1 << 2;
const CLIENT_PROTOCOL_41: u32 = 1 << 9;
const CLIENT_SSL: u32 = 1 << 11;
const CLIENT_TRANSACTIONS: u32 = 1 << 13;
const CLIENT_SECURE_CONNECTION: u32 = 1 << 15;
const CLIENT_MULTI_RESULTS: u32 = 1 << 17;
const CLIENT_PLUGIN_AUTH: u32 = 1 << 19;
const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 1 << 21;

/// What the client needs the server to speak.
const REQUIRED: u32 = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH;

/// `max_packet_size` announced: MariaDB's largest (1 GiB).
const MAX_PACKET: u32 = 1 << 30;

/// utf8mb4_general_ci: the connection's character set (the binlog is bytes
/// either way; only the few statements the session runs are text).
const CHARSET: u8 = 45;

const NATIVE_PASSWORD: &str = "mysql_native_password";

/// The server's initial handshake, as far as the client needs it.
#[derive(Debug)]
struct Handshake {
    /// The server's id of this connection (`CONNECTION_ID()`).
    connection_id: u32,
    caps: u32,
    scramble: Vec<u8>,
}

/// Connects to `source.host:source.port`, sets up TLS if configured, and
/// logs in as `source.user`.
///
/// # Errors
/// A network error, a server error (refused credentials, too many
/// connections), a TLS failure, or an authentication the client does not
/// speak.
pub async fn login(config: &Config, password: &str) -> Result<BinlogConn, WireError> {
    let source = &config.source;
    let mut tcp = TcpStream::connect((source.host.as_str(), source.port)).await?;
    tcp.set_nodelay(true)?;
    let greeting = read_plain_packet(&mut tcp).await?;
    let handshake = parse_handshake(&greeting)?;
    let tls = source.tls.mode != TlsMode::Disabled;
    let mut caps = CLIENT_LONG_PASSWORD
        | CLIENT_LONG_FLAG
        | CLIENT_TRANSACTIONS
        | CLIENT_MULTI_RESULTS
        | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
    caps = (caps & handshake.caps) | REQUIRED;
    let transport = if tls {
        if handshake.caps & CLIENT_SSL == 0 {
            return Err(WireError::Tls(format!(
                "source.tls.mode asks for TLS, but the server at {}:{} does not offer it (have_ssl \
                 is not YES); enable TLS on the server (ssl_cert, ssl_key) or set \
                 source.tls.mode = \"disabled\"",
                source.host, source.port
            )));
        }
        caps |= CLIENT_SSL;
        let mut request = Vec::with_capacity(32);
        put_fixed_fields(&mut request, caps);
        tcp.write_all(&frame(1, &request)?).await?;
        Transport::Tls(Box::new(
            tls::connect(&source.host, &source.tls, tcp).await?,
        ))
    } else {
        Transport::Plain(tcp)
    };
    let mut conn = BinlogConn::new(transport, if tls { 2 } else { 1 }, source.max_event_bytes);
    conn.connection_id = handshake.connection_id;

    let mut response = Vec::with_capacity(128);
    put_fixed_fields(&mut response, caps);
    response.extend_from_slice(source.user.as_bytes());
    response.push(0);
    let auth = native_password(password.as_bytes(), &handshake.scramble);
    put_lenenc_bytes(&mut response, &auth);
    response.extend_from_slice(NATIVE_PASSWORD.as_bytes());
    response.push(0);
    conn.write_packet(&response).await?;

    loop {
        let answer = conn.read_payload().await?;
        match answer.first() {
            Some(0x00) => return Ok(conn),
            Some(0xFF) => return Err(WireError::from_err_packet(&answer)),
            // Authentication switch: plugin name, NUL, the plugin's data.
            Some(0xFE) => {
                let rest = &answer[1..];
                let name_end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
                let plugin = String::from_utf8_lossy(&rest[..name_end]);
                let data = rest.get(name_end + 1..).unwrap_or_default();
                if plugin != NATIVE_PASSWORD {
                    return Err(unsupported_plugin(&plugin, &source.user));
                }
                let scramble = data.get(..20).ok_or_else(|| {
                    WireError::Protocol("an authentication switch without a scramble".into())
                })?;
                conn.write_packet(&native_password(password.as_bytes(), scramble))
                    .await?;
            }
            Some(0x01) => {
                return Err(WireError::Unsupported(format!(
                    "the server asked for more authentication data than {NATIVE_PASSWORD} sends; \
                     {}",
                    plugin_fix(&source.user)
                )))
            }
            _ => {
                return Err(WireError::Protocol(
                    "an unexpected answer while logging in".into(),
                ))
            }
        }
    }
}

fn unsupported_plugin(plugin: &str, user: &str) -> WireError {
    WireError::Unsupported(format!(
        "the server authenticates {user} with {plugin}, which binlog-tailer's binlog \
         connection does not speak (it speaks {NATIVE_PASSWORD}); {}",
        plugin_fix(user)
    ))
}

fn plugin_fix(user: &str) -> String {
    format!(
        "fix: ALTER USER '{user}'@'<host>' IDENTIFIED VIA {NATIVE_PASSWORD} USING \
         PASSWORD('<its password>')"
    )
}

/// Capabilities, max packet size, character set, 23 reserved bytes: the
/// start of both the TLS request and the handshake response.
fn put_fixed_fields(out: &mut Vec<u8>, caps: u32) {
    out.extend_from_slice(&caps.to_le_bytes());
    out.extend_from_slice(&MAX_PACKET.to_le_bytes());
    out.push(CHARSET);
    out.extend_from_slice(&[0; 23]);
}

fn put_lenenc_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Auth responses are at most 20 bytes here.
    out.push(u8::try_from(bytes.len()).unwrap_or(0));
    out.extend_from_slice(bytes);
}

/// One packet read from the socket before TLS (no buffering: the bytes
/// after it belong to the TLS handshake).
async fn read_plain_packet(tcp: &mut TcpStream) -> Result<Vec<u8>, WireError> {
    let mut header = [0u8; 4];
    tcp.read_exact(&mut header).await?;
    next_seq(&mut 0, header[3])?;
    let mut payload = vec![0; payload_len(&header)];
    tcp.read_exact(&mut payload).await?;
    Ok(payload)
}

/// Reads the server's initial handshake (protocol version 10).
fn parse_handshake(p: &[u8]) -> Result<Handshake, WireError> {
    let short = || WireError::Protocol("a handshake cut short".into());
    match p.first() {
        Some(0xFF) => return Err(WireError::from_err_packet(p)),
        Some(10) => {}
        Some(v) => {
            return Err(WireError::Unsupported(format!(
                "the server speaks protocol version {v}; binlog-tailer speaks 10"
            )))
        }
        None => return Err(short()),
    }
    let version_end = 1 + p[1..].iter().position(|b| *b == 0).ok_or_else(short)?;
    // Version, NUL, connection id.
    let mut at = version_end + 1;
    let id = p.get(at..at + 4).ok_or_else(short)?;
    let connection_id = u32::from_le_bytes([id[0], id[1], id[2], id[3]]);
    at += 4;
    let part1 = p.get(at..at + 8).ok_or_else(short)?;
    at += 8 + 1;
    let low = p.get(at..at + 2).ok_or_else(short)?;
    let mut caps = u32::from(u16::from_le_bytes([low[0], low[1]]));
    at += 2;
    // Character set, status, upper capabilities, auth data length, 10
    // reserved bytes (MariaDB's extended capabilities in the last 4).
    let rest = p.get(at..at + 16).ok_or_else(short)?;
    caps |= u32::from(u16::from_le_bytes([rest[3], rest[4]])) << 16;
    let auth_len = usize::from(rest[5]);
    at += 16;
    if caps & REQUIRED != REQUIRED {
        return Err(WireError::Unsupported(
            "the server lacks the 4.1 protocol with plugin authentication; it is not a \
             MariaDB version binlog-tailer supports"
                .into(),
        ));
    }
    let part2_len = auth_len.saturating_sub(9).max(12);
    let part2 = p.get(at..at + part2_len).ok_or_else(short)?;
    let mut scramble = part1.to_vec();
    scramble.extend_from_slice(part2);
    Ok(Handshake {
        connection_id,
        caps,
        scramble,
    })
}

/// `mysql_native_password`: SHA1(password) XOR SHA1(scramble +
/// SHA1(SHA1(password))); empty for an empty password.
fn native_password(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let once = Sha1::digest(password);
    let twice = Sha1::digest(once);
    let mut hasher = Sha1::new();
    hasher.update(scramble.get(..20).unwrap_or(scramble));
    hasher.update(twice);
    let mask = hasher.finalize();
    once.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_password_passes_the_servers_check() {
        // The server stores SHA1(SHA1(password)) and checks that
        // SHA1(response XOR SHA1(scramble + stored)) == stored.
        let scramble: Vec<u8> = (1..=20).collect();
        let password = b"tailer-local";
        let stored = Sha1::digest(Sha1::digest(password));
        let response = native_password(password, &scramble);
        let mut hasher = Sha1::new();
        hasher.update(&scramble);
        hasher.update(stored);
        let mask = hasher.finalize();
        let candidate: Vec<u8> = response
            .iter()
            .zip(mask.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(Sha1::digest(&candidate), stored);
        let wrong = native_password(b"tailer-locaI", &scramble);
        assert_ne!(wrong, response);
        assert!(native_password(b"", &scramble).is_empty());
    }

    #[test]
    fn a_handshake_gives_the_connection_id_capabilities_and_the_whole_scramble() {
        let mut p = vec![10];
        p.extend_from_slice(b"10.11.19-MariaDB-log\0");
        p.extend_from_slice(&0x0102_0304u32.to_le_bytes());
        p.extend_from_slice(b"abcdefgh\0");
        let caps = 0xF7FF_FFFEu32;
        p.extend_from_slice(&(caps as u16).to_le_bytes());
        p.push(45);
        p.extend_from_slice(&2u16.to_le_bytes());
        p.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        p.push(21);
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(b"ijklmnopqrst\0");
        p.extend_from_slice(b"mysql_native_password\0");
        let h = parse_handshake(&p).unwrap();
        assert_eq!(h.connection_id, 0x0102_0304);
        assert_eq!(h.caps, caps);
        assert_eq!(h.scramble, b"abcdefghijklmnopqrst");
        for len in 0..p.len() - 23 {
            assert!(parse_handshake(&p[..len]).is_err(), "{len} bytes");
        }
        assert!(matches!(
            parse_handshake(&[9, 0]),
            Err(WireError::Unsupported(_))
        ));
    }
}
