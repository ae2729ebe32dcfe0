//! The benchmark's ceiling: a minimal axum server that answers every POST with its JSON body,
//! on the same runtime and HTTP stack as `authcap serve`. `echo 127.0.0.1:9090`.

use axum::{Router, body::Bytes, http::header, response::IntoResponse, routing::post};

async fn echo(body: Bytes) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], body)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9090".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    let app = Router::new()
        .route("/{*path}", post(echo))
        .route("/", post(echo));
    axum::serve(listener, app).await
}
