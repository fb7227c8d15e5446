//! Wire types shared by the Hanami server and its clients: request and response bodies,
//! list tables, and the protobuf messages of the websocket protocols.
//!
//! One definition serves both sides, so the server and the SDK cannot drift apart. Field
//! names and list column orders follow the original Hanami API (`/v1.0alpha`), which the
//! original Python SDK and Go CLI depend on.

pub mod auth;
pub mod clusters;
pub mod datasets;
pub mod list;
pub mod logs;
pub mod pattern;
pub mod projects;
pub mod scope;
pub mod tasks;
pub mod tls;
pub mod users;
pub mod websocket;

/// Path prefix of every REST endpoint.
pub const API_PREFIX: &str = "/v1.0alpha";

/// Whether `text` is a uuid as the API writes them: 8-4-4-4-12 hexadecimal digits (of
/// either case) separated by '-'.
pub fn is_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuids_are_told_apart() {
        assert!(super::is_uuid("9f86921d-9a7c-44A2-836c-1683928d9354"));
        for not in [
            "",
            "9f86921d-9a7c-44a2-836c-1683928d935",
            "9f86921d9a7c-44a2-836c-1683928d93544",
            "9f86921d-9a7c-44a2-836c-1683928d935g",
            "9f86921d-9a7c-44a2-836c-1683928d9354-",
        ] {
            assert!(!super::is_uuid(not), "{not}");
        }
    }
}
