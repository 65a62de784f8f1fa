//! Facts about a request that decide whether to believe it: which site it
//! comes from (`origin`) and which client sent it (`client_ip`). Pure
//! functions over header text, so they are unit-, property- and fuzz-tested
//! without a server.

pub mod client_ip;
pub mod origin;
