//! A consumer group's state straight from its coordinator (FindCoordinator v0, then DescribeGroups v0, on a plaintext connection): how a run sees that a consumer of the user's own has joined on brokers whose ListGroups does not list a group before it commits (Tansu 0.6), where librdkafka's group listing cannot find it.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const FIND_COORDINATOR: i16 = 10;
const DESCRIBE_GROUPS: i16 = 15;
/// Kafka's NOT_COORDINATOR error code.
const NOT_COORDINATOR: i16 = 16;
/// The largest response read (a DescribeGroups answer for one group with its members).
const RESPONSE_BYTES_MAX: usize = 1024 * 1024;

/// The state of `group` (`Stable`, `PreparingRebalance`, `Empty`, `Dead`, ...) as its
/// coordinator reports it, asking `bootstrap` (`host:port`) where that is.
pub fn group_state(bootstrap: &str, group: &str, timeout: Duration) -> Result<String, String> {
    let (code, state) = describe(bootstrap, group, timeout)?;
    if code != NOT_COORDINATOR {
        return checked(code, state);
    }
    let coordinator = find_coordinator(bootstrap, group, timeout)?;
    let (code, state) = describe(&coordinator, group, timeout)?;
    checked(code, state)
}

fn checked(code: i16, state: String) -> Result<String, String> {
    if code == 0 {
        Ok(state)
    } else {
        Err(format!("DescribeGroups answered error code {code}"))
    }
}

/// DescribeGroups v0 for one group: (error code, state).
fn describe(broker: &str, group: &str, timeout: Duration) -> Result<(i16, String), String> {
    let mut body = 1_i32.to_be_bytes().to_vec();
    put_string(&mut body, group);
    let response = exchange(broker, DESCRIBE_GROUPS, &body, timeout)?;
    let mut reader = Reader(&response);
    let groups = reader.i32()?;
    if groups < 1 {
        return Err("DescribeGroups answered no group".into());
    }
    let code = reader.i16()?;
    let _group_id = reader.string()?;
    let state = reader.string()?;
    Ok((code, state))
}

/// FindCoordinator v0 for a group: its coordinator's `host:port`.
fn find_coordinator(bootstrap: &str, group: &str, timeout: Duration) -> Result<String, String> {
    let mut body = Vec::new();
    put_string(&mut body, group);
    let response = exchange(bootstrap, FIND_COORDINATOR, &body, timeout)?;
    let mut reader = Reader(&response);
    let code = reader.i16()?;
    if code != 0 {
        return Err(format!("FindCoordinator answered error code {code}"));
    }
    let _node_id = reader.i32()?;
    let host = reader.string()?;
    let port = reader.i32()?;
    Ok(format!("{host}:{port}"))
}

/// Sends one v0 request (header v1, client id `roadtest`) and returns the response body after
/// its correlation id.
fn exchange(broker: &str, api_key: i16, body: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
    let first = broker.split(',').next().unwrap_or(broker).trim();
    let address = first
        .to_socket_addrs()
        .map_err(|e| format!("{first}: {e}"))?
        .next()
        .ok_or_else(|| format!("{first}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&address, timeout).map_err(|e| format!("{first}: {e}"))?;
    let io = |e: std::io::Error| format!("{first}: {e}");
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let request = frame(api_key, body);
    stream.write_all(&request).map_err(io)?;
    let mut size = [0_u8; 4];
    stream.read_exact(&mut size).map_err(io)?;
    let size = usize::try_from(i32::from_be_bytes(size)).unwrap_or(usize::MAX);
    if !(4..=RESPONSE_BYTES_MAX).contains(&size) {
        return Err(format!(
            "{first}: a response of {size} bytes is not a Kafka answer"
        ));
    }
    let mut response = vec![0_u8; size];
    stream.read_exact(&mut response).map_err(io)?;
    Ok(response.split_off(4))
}

/// A sized request frame: api key, version 0, correlation id 1, client id, body.
fn frame(api_key: i16, body: &[u8]) -> Vec<u8> {
    let mut request = Vec::with_capacity(body.len() + 24);
    request.extend_from_slice(&api_key.to_be_bytes());
    request.extend_from_slice(&0_i16.to_be_bytes());
    request.extend_from_slice(&1_i32.to_be_bytes());
    put_string(&mut request, "roadtest");
    request.extend_from_slice(body);
    let size = i32::try_from(request.len()).unwrap_or(i32::MAX);
    let mut sized = size.to_be_bytes().to_vec();
    sized.extend(request);
    sized
}

fn put_string(out: &mut Vec<u8>, text: &str) {
    let length = i16::try_from(text.len()).unwrap_or(i16::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&text.as_bytes()[..usize::try_from(length).unwrap_or(0)]);
}

/// Reads big-endian fields off a response; running short is an error, never a panic.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, count: usize) -> Result<&[u8], String> {
        if self.0.len() < count {
            return Err("the response ended early".into());
        }
        let (head, rest) = self.0.split_at(count);
        self.0 = rest;
        Ok(head)
    }

    fn i16(&mut self) -> Result<i16, String> {
        let bytes = self.take(2)?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn i32(&mut self) -> Result<i32, String> {
        let bytes = self.take(4)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn string(&mut self) -> Result<String, String> {
        let length = usize::try_from(self.i16()?).unwrap_or(0);
        Ok(String::from_utf8_lossy(self.take(length)?).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_frame_has_its_size_header_and_body() {
        let mut body = Vec::new();
        put_string(&mut body, "g");
        let request = frame(DESCRIBE_GROUPS, &body);
        let expected: &[u8] = &[
            0, 0, 0, 21, // size
            0, 15, 0, 0, 0, 0, 0, 1, // api key, version, correlation id
            0, 8, b'r', b'o', b'a', b'd', b't', b'e', b's', b't', // client id
            0, 1, b'g', // body
        ];
        assert_eq!(request, expected);
    }

    #[test]
    fn a_short_or_lying_response_is_an_error_not_a_panic() {
        let mut reader = Reader(&[0, 5, b'a', b'b']);
        assert_eq!(reader.string(), Err("the response ended early".to_string()));
        let mut reader = Reader(&[0, 0, 0, 1, 0, 0, 0, 2, b'g', b'1', 0, 6]);
        assert_eq!(reader.i32(), Ok(1));
        assert_eq!(reader.i16(), Ok(0));
        assert_eq!(reader.string(), Ok("g1".to_string()));
        assert!(reader.string().is_err());
        let mut negative = Reader(&[0xff, 0xff]);
        assert_eq!(negative.string(), Ok(String::new()));
    }
}
