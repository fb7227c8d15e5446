//! The websocket protocols (file upload and direct cluster IO) on the server's port.
//!
//! A session starts with a JSON text message ([`SessionInit`]); the server answers with a
//! JSON [`SessionReply`] in a *binary* frame. After a successful start every message in both
//! directions is one binary protobuf message, strictly alternating: the client sends one
//! message, the server answers exactly one.

use serde::{Deserialize, Serialize};

/// The largest websocket message the server takes (an upload chunk, a direct-IO message).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// Target of a file-upload session.
pub const TARGET_FILE_UPLOAD: &str = "file_upload";
/// Target of a direct-IO session.
pub const TARGET_CLUSTER: &str = "cluster";

/// The policy's refusal: the text of a 401 of the REST API, of a refused session start, and
/// the close reason of a direct-IO step the user's role may not make.
pub const POLICY_DENIED: &str = "Access denied by policy";
/// Start of the text of a 500 of the REST API, and of a session start refused for the same
/// reasons (the database could not check the token, say).
pub const INTERNAL_ERROR: &str = "Internal server error (";
/// Close reason of a direct-IO session whose cluster was deleted.
pub const CLOSED_CLUSTER_DELETED: &str = "the cluster was deleted";
/// Failed reply and close reason of an upload session whose upload is gone: cancelled (its
/// dataset deleted), expired or finished by another session.
pub const CLOSED_UPLOAD_GONE: &str = "the upload was cancelled, expired or finished";
/// Failed reply and close reason of an upload session whose upload is being made into its
/// dataset (every byte has arrived); the REST calls on it answer 409 meanwhile.
pub const CLOSED_UPLOAD_FINALISING: &str =
    "the upload is being finalised: every byte has arrived, and it takes no more chunks";
/// Start of the close reason of a session whose user lost access to its target (why
/// follows).
pub const CLOSED_ACCESS_WITHDRAWN: &str = "access withdrawn: ";
/// Failed reply and close reason of a session that the server ended because it stops, and
/// the text of its 503 to a websocket opening meanwhile.
pub const CLOSED_SHUTTING_DOWN: &str = "the server is shutting down";

/// First message of a session (client to server, JSON text). `Debug` hides the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInit {
    /// Token, as in `X-Auth-Token`; one left out, or null, reads as empty (which the server
    /// refuses for want of a token).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub token: String,
    /// `file_upload` or `cluster`.
    pub target: String,
    /// Temporary file uuid (upload) or cluster uuid (direct IO).
    pub uuid: String,
}

/// A string that may be null, null read as empty.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Option::<String>::deserialize(d).map(Option::unwrap_or_default)
}

impl std::fmt::Debug for SessionInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionInit")
            .field("token", &crate::auth::HIDDEN)
            .field("target", &self.target)
            .field("uuid", &self.uuid)
            .finish()
    }
}

/// Answer to [`SessionInit`] (server to client, JSON in a binary frame). The fields are in
/// the original's order (its JSON library sorted keys): `error`, `success`, `uuid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionReply {
    /// Reason on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the session is open.
    pub success: bool,
    /// Session uuid on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
}

/// The protobuf messages of the websocket protocols (field names and numbers are normative).
pub mod proto {
    /// One chunk of an uploaded file (client to server).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FileUploadMessage {
        /// Byte offset of the chunk in the file.
        #[prost(uint64, tag = "1")]
        pub position: u64,
        /// The chunk.
        #[prost(bytes = "bytes", tag = "2")]
        pub data: bytes::Bytes,
    }

    /// Which buffer a [`ClusterIoMessage`] addresses.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum TargetBufferType {
        /// Values for an input interface.
        InputBufferType = 0,
        /// Raw output values (server to client only).
        OutputBufferType = 1,
        /// Expected values for an output interface (training labels).
        ExpectedBufferType = 2,
    }

    /// What the last message of a sample asks for.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum ClusterProcessType {
        /// One forward pass; the answer carries the outputs.
        RequestType = 0,
        /// One training step.
        TrainType = 1,
    }

    /// One message of a direct-IO session (both directions).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ClusterIoMessage {
        /// Input or output name.
        #[prost(string, tag = "1")]
        pub buffer_name: String,
        /// Whether this message completes a sample (and triggers processing).
        #[prost(bool, tag = "2")]
        pub is_last: bool,
        /// Request or train.
        #[prost(enumeration = "ClusterProcessType", tag = "3")]
        pub process_type: i32,
        /// Which buffer the values are for.
        #[prost(enumeration = "TargetBufferType", tag = "4")]
        pub target_buffer_type: i32,
        /// How many of `values` count.
        #[prost(uint64, tag = "5")]
        pub number_of_values: u64,
        /// The values.
        #[prost(float, repeated, tag = "6")]
        pub values: Vec<f32>,
    }

    /// Answer to each [`FileUploadMessage`] (server to client).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FileUploadResponseMessage {
        /// Whether the chunk was stored.
        #[prost(bool, tag = "1")]
        pub success: bool,
        /// Reason on failure.
        #[prost(string, tag = "2")]
        pub error_message: String,
    }
}

#[cfg(test)]
mod tests {
    use super::{SessionInit, SessionReply};

    /// A start without a token, or with a null one, reads as one with an empty token (which
    /// the server refuses for want of one); a token of another type is no start.
    #[test]
    fn a_missing_or_null_token_reads_as_empty() {
        for text in [
            r#"{"target": "cluster", "uuid": "u"}"#,
            r#"{"token": null, "target": "cluster", "uuid": "u"}"#,
        ] {
            let init: SessionInit = serde_json::from_str(text).unwrap();
            assert_eq!(init.token, "", "{text}");
            assert_eq!((init.target.as_str(), init.uuid.as_str()), ("cluster", "u"));
        }
        let numbered = r#"{"token": 5, "target": "cluster", "uuid": "u"}"#;
        assert!(serde_json::from_str::<SessionInit>(numbered).is_err());
    }

    /// The replies' keys come in the original's (sorted) order.
    #[test]
    fn session_replies_keep_the_original_key_order() {
        let refused = SessionReply {
            error: Some("no".into()),
            success: false,
            uuid: None,
        };
        assert_eq!(
            serde_json::to_string(&refused).unwrap(),
            r#"{"error":"no","success":false}"#
        );
        let opened = SessionReply {
            error: None,
            success: true,
            uuid: Some("u".into()),
        };
        assert_eq!(
            serde_json::to_string(&opened).unwrap(),
            r#"{"success":true,"uuid":"u"}"#
        );
    }
}
