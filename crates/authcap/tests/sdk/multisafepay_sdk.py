"""Drives the official MultiSafepay Python SDK (multisafepay==3.1.0) against Authcap.

Usage: multisafepay_sdk.py BASE_URL API_KEY   (BASE_URL ends in /multisafepay/v1/)
create (manual capture) -> partial capture -> capture the rest -> get -> refund ->
cancel reservation on a second order; every outcome is asserted, any mismatch exits non-zero.
"""
import os
import sys

os.environ["MSP_SDK_BUILD_PROFILE"] = "dev"
os.environ["MSP_SDK_ALLOW_CUSTOM_BASE_URL"] = "1"

import requests  # noqa: E402
from multisafepay.sdk import Sdk  # noqa: E402
from multisafepay.api.paths.orders.request.order_request import OrderRequest  # noqa: E402
from multisafepay.api.paths.orders.request.components.payment_options import (  # noqa: E402
    PaymentOptions,
)
from multisafepay.api.paths.orders.order_id.capture.request.capture_request import (  # noqa: E402
    CaptureOrderRequest,
)
from multisafepay.api.paths.orders.order_id.refund.request.refund_request import (  # noqa: E402
    RefundOrderRequest,
)
from multisafepay.api.paths.capture.request.capture_request import (  # noqa: E402
    CaptureRequest,
)

base, key = sys.argv[1], sys.argv[2]
assert base.endswith("/v1/"), base


def check(condition, what):
    if not condition:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)


sdk = Sdk(api_key=key, base_url=base)
orders = sdk.get_order_manager()


def new_order(order_id, amount, card=None):
    request = (
        OrderRequest()
        .add_type("direct")
        .add_order_id(order_id)
        .add_currency("EUR")
        .add_amount(amount)
        .add_description("SDK order")
        .add_gateway("VISA")
        .add_capture("manual")
        .add_payment_options(
            PaymentOptions()
            .add_notification_url("http://127.0.0.1/notify")
            .add_redirect_url("http://127.0.0.1/ok")
        )
    )
    if card:
        request = request.add_gateway_info({"card_number": card, "card_expiry_date": "3012"})
    return orders.create(request)


# Create (manual capture): authorized = completed / initialized.
created = new_order("sdk-1", 1000, "4242424242424242")
check(created.get_status_code() == 200, f"create status {created.get_status_code()}")
order = created.get_data()
check(order is not None, f"create data parsed: {created.get_body_data()}")
check(order.order_id == "sdk-1", f"create order_id {order.order_id}")
check(order.status == "completed" and order.financial_status == "initialized",
      f"create statuses {order.status}/{order.financial_status}")
check(order.amount == 1000, f"create amount {order.amount}")

# Partial capture.
first = orders.capture(
    "sdk-1",
    CaptureOrderRequest()
    .add_amount(400)
    .add_new_order_id("sdk-1-c1")
    .add_new_order_status("completed")
    .add_invoice_id("inv-1")
    .add_carrier("DHL")
    .add_tracktrace_code("TT1")
    .add_reason("first box")
    .add_description("box 1"),
)
check(first.get_status_code() == 200, f"capture status {first.get_status_code()}")
check(first.get_data() is not None, f"capture data {first.get_body_data()}")
check(first.get_data().order_id == "sdk-1-c1", f"capture order_id {first.get_data().order_id}")
check(str(first.get_data().transaction_id).isdigit(), "capture transaction_id")

mid = orders.get("sdk-1").get_data()
check(mid.status == "completed" and mid.financial_status == "completed",
      f"after partial {mid.status}/{mid.financial_status}")

# Capture the rest.
rest = orders.capture(
    "sdk-1",
    CaptureOrderRequest().add_amount(600).add_new_order_id("sdk-1-c2").add_new_order_status("completed"),
)
check(rest.get_status_code() == 200, f"capture rest status {rest.get_status_code()}")
check(rest.get_data().order_id == "sdk-1-c2", "capture rest order_id")

# Too much: 4xx raises requests.HTTPError.
try:
    orders.capture("sdk-1", CaptureOrderRequest().add_amount(1).add_new_order_status("completed"))
    check(False, "capture beyond the authorization must fail")
except requests.HTTPError as error:
    check(error.response.status_code == 409, f"over-capture status {error.response.status_code}")
    body = error.response.json()
    check(body["success"] is False and body["error_code"] == 1022, f"over-capture body {body}")

# Get: the order and a capture by its new_order_id.
got = orders.get("sdk-1")
data = got.get_data()
check(data is not None, f"get parsed: {got.get_body_data()}")
check(data.amount == 1000 and data.amount_refunded == 0, "get amounts")
check(data.status == "completed" and data.financial_status == "completed",
      f"get statuses {data.status}/{data.financial_status}")
check(data.items is None, "items")
check(data.description == "SDK order", "description")
check(data.payment_details is not None and data.payment_details.last4 == "4242", "payment details")
sub = orders.get("sdk-1-c1").get_data()
check(sub is not None and sub.amount == 400 and sub.order_id == "sdk-1-c1", "capture read back")

# Refund part, then read it back.
refund = orders.refund(
    "sdk-1",
    RefundOrderRequest().add_currency("EUR").add_amount(300).add_description("dented"),
)
check(refund.get_status_code() == 200, f"refund status {refund.get_status_code()}")
check(refund.get_data() is not None and str(refund.get_data().transaction_id).isdigit(), "refund data")
after = orders.get("sdk-1").get_data()
check(after.amount_refunded == 300, f"amount_refunded {after.amount_refunded}")
check(after.status == "partial_refunded", f"after refund {after.status}")

# A second order: partial capture, then cancel the reservation of the rest.
new_order("sdk-2", 500)
orders.capture("sdk-2", CaptureOrderRequest().add_amount(200).add_new_order_status("completed"))
captures = sdk.get_capture_manager()
cancelled = captures.capture_reservation_cancel(
    "sdk-2", CaptureRequest(status="cancelled", reason="out of stock")
)
check(cancelled.get_status_code() == 200, f"cancel status {cancelled.get_status_code()}")
check(cancelled.get_data() is not None and cancelled.get_data().order_id == "sdk-2", "cancel data")
final = orders.get("sdk-2").get_data()
check(final.status == "completed", f"sdk-2 status {final.status}")

# A third order, cancelled before any capture: void / void.
new_order("sdk-3", 500)
captures.capture_reservation_cancel("sdk-3", CaptureRequest(status="cancelled"))
voided = orders.get("sdk-3").get_data()
check(voided.status == "void" and voided.financial_status == "void",
      f"sdk-3 {voided.status}/{voided.financial_status}")

# A declined card: 402 with error_code 1024.
try:
    new_order("sdk-4", 500, "4000000000000002")
    check(False, "declined card must fail")
except requests.HTTPError as error:
    check(error.response.json()["error_code"] == 1024, "decline code")

# A wrong key: 401 with error_code 1032.
try:
    Sdk(api_key="wrong-key", base_url=base).get_order_manager().get("sdk-1")
    check(False, "wrong key must fail")
except requests.HTTPError as error:
    check(error.response.status_code == 401, "wrong key status")
    check(error.response.json()["error_code"] == 1032, "wrong key code")

print("multisafepay python SDK: ok")
