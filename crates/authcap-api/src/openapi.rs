//! The OpenAPI 3.1 document of the native API, generated from the handlers and wire types.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::native;
use crate::native::types::*;

#[derive(OpenApi)]
#[openapi(
    info(title = "Authcap native API", description = "Authorize now, capture later. Amounts are integers in minor units."),
    paths(native::create_order, native::get_order, native::list_orders, native::capture_order,
          native::list_captures, native::void_order, native::refund_order),
    components(schemas(CreateOrderRequest, PaymentMethodRequest, CaptureOrderRequest, ShippingBody,
        RefundOrderRequest, OrderBody, PaymentMethodBody, CaptureBody, RefundBody, CaptureWithOrder,
        RefundWithOrder, OrderList, CaptureList, ProblemBody)),
    modifiers(&BearerAuth)
)]
pub struct NativeApi;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(NativeApi::openapi())
}
