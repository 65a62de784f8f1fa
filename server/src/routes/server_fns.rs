//! `/api/*`: dispatches to the `#[server]` functions, with the service in
//! context; an unknown API path is a 404 in the contract's format.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

pub fn router<S: Clone + Send + Sync + 'static>(
    context: impl Fn() + Clone + Send + Sync + 'static,
) -> Router<S> {
    Router::new().route(
        "/api/{*fn_name}",
        any(move |request: Request| {
            let context = context.clone();
            async move { dispatch(context, request).await }
        }),
    )
}

async fn dispatch(context: impl Fn() + Clone + Send + 'static, request: Request) -> Response {
    let known =
        leptos::server_fn::axum::get_server_fn_service(request.uri().path(), request.method().clone());
    if known.is_none() {
        let unknown = credits::service::ServiceError::NotFound("no such API route or method".into());
        return super::HttpError::from(unknown).into_response();
    }
    leptos_axum::handle_server_fns_with_context(context, request).await.into_response()
}
