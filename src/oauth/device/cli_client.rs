//! `keygate-cli`: the client `keygate login` is when no `--client-id` is given (README,
//! "Device flow and `keygate login`"). Every organization knows it without registering it
//! ([`crate::clients::resolve`] answers it before looking anything up). It is a public
//! client (RFC 6749 §2.1: it sends only its `client_id`, it has no secret to keep) with no
//! redirect URI, so the authorization code flow can never give it a code: only the device
//! flow, where a signed-in person confirms the request on keygate's own page, gives it
//! tokens. Its requests are audited like any client's, and a client IP may hold only
//! `device.pending_per_ip` of its pending requests at once.

use crate::clients::{Client, ClientAuth, ClientSource};

/// Its `client_id`: not an id keygate generates (`cli_…`, `key_…`) nor a URL, so it names
/// no other client.
pub const CLIENT_ID: &str = "keygate-cli";

/// The client, as the flows see it. It sets no limit of its own on scopes (`scope: None`):
/// it gets what it asks for, within what the person's role can grant.
pub fn client() -> Client {
    Client {
        client_id: CLIENT_ID.to_owned(),
        name: "keygate login (command line)".to_owned(),
        redirect_uris: Vec::new(),
        auth: ClientAuth::None,
        source: ClientSource::BuiltIn,
        scope: None,
    }
}
