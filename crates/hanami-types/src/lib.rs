//! Wire types shared by the Hanami server and its clients: request and response bodies,
//! list tables, and the protobuf messages of the websocket protocols.
//!
//! One definition serves both sides, so the server and the SDK cannot drift apart.
