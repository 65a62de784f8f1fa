//! `GET/POST /api/user/sync`.

use crate::error::ApiError;
use credits::dto::{SyncResponse, UserView};
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, PostUrl};

/// The caller's user record and figures.
#[server(prefix = "/api", endpoint = "user/sync", input = GetUrl, output = crate::api::codec::JsonText)]
pub async fn get_user() -> Result<UserView, ApiError> {
    use super::{caller, fail, service};
    let service = service()?;
    let caller = caller(&service).await?;
    service.user(&caller).await.map_err(fail)
}

/// Creates or updates the caller from the session; the initial grant happens once.
#[server(prefix = "/api", endpoint = "user/sync", input = PostUrl, output = crate::api::codec::JsonText)]
pub async fn sync_user() -> Result<SyncResponse, ApiError> {
    use super::{caller, fail, service};
    let service = service()?;
    let caller = caller(&service).await?;
    service.sync_user(&caller).await.map_err(fail)
}
