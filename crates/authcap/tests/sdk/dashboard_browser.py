"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): sign in with the
keyboard, a wrong key refused, find an order created through Mercado Pago, capture part of it
from its page, see the capture in its timeline and its webhook delivery answered, advance the
clock and see another order expire, a cross-site form post refused, sign out. Screenshots of
the main pages go to SCREENSHOTS.

Usage: dashboard_browser.py BASE SECRET_KEY MP_ORDER_ID EXPIRING_ORDER_ID SCREENSHOTS"""
import os
import sys

from playwright.sync_api import expect, sync_playwright

base, secret_key, mp_order, expiring, screenshots = sys.argv[1:6]
os.makedirs(screenshots, exist_ok=True)
chromium = os.environ.get("AUTHCAP_CHROMIUM", "/usr/bin/chromium")


# Generous waits: the test suite runs beside this browser on two cores.
expect.set_options(timeout=20_000)


def shot(page, name):
    page.screenshot(path=os.path.join(screenshots, f"{name}.png"), full_page=True)


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(30_000)
    page = context.new_page()

    page.goto(f"{base}/dashboard")
    expect(page).to_have_url(f"{base}/dashboard/sign-in")
    shot(page, "sign-in")

    # A wrong key is refused, in words.
    page.get_by_label("Secret key").fill("sk_wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not one of a merchant")

    # The right one, typed and submitted with the keyboard only.
    page.get_by_label("Secret key").focus()
    page.keyboard.type(secret_key)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/dashboard/orders")
    expect(page.get_by_role("heading", name="Orders")).to_be_visible()
    shot(page, "orders")

    # Find the Mercado Pago order and open it.
    page.get_by_label("Reference or id").fill(mp_order)
    page.get_by_role("button", name="Find").click()
    page.get_by_role("link", name=mp_order).click()
    expect(page.get_by_text("mercadopago", exact=True)).to_be_visible()
    expect(page.locator("#capturable")).to_contain_text("10.00")

    # Capture part of it.
    page.get_by_label("Capture").fill("4.00")
    page.get_by_role("button", name="Capture", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Captured.")
    expect(page.locator(".timeline")).to_contain_text("capture.succeeded")
    expect(page.locator("#capturable")).to_contain_text("6.00")

    # Its webhook delivery arrives and is answered 200.
    for _ in range(60):
        if page.locator("td", has_text="200").count() >= 2:
            break
        page.wait_for_timeout(250)
        page.reload()
    expect(page.locator("td", has_text="200").first).to_be_visible()
    shot(page, "order")

    # A form on another site posting to the dashboard: refused, nothing captured.
    evil = context.new_page()
    evil.route("http://evil.test/**", lambda route: route.fulfill(
        content_type="text/html",
        body=f'<form id="f" method="post" action="{base}/dashboard/orders/{mp_order}/capture">'
             '<input name="amount" value="1.00"><input name="idempotency_key" value="evil-1">'
             '</form><script>document.getElementById("f").submit()</script>'))
    with evil.expect_navigation():
        evil.goto("http://evil.test/page")
    assert "Captured." not in evil.content(), evil.content()
    evil.close()
    page.reload()
    expect(page.locator("#capturable")).to_contain_text("6.00")

    # Webhooks page.
    page.get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("heading", name="Webhook endpoints")).to_be_visible()
    shot(page, "webhooks")

    # The clock: advance 8 days and the other order has expired.
    page.get_by_role("link", name="Clock").click()
    page.get_by_label("Advance by").select_option("8d")
    page.get_by_role("button", name="Advance").click()
    expect(page.get_by_role("status")).to_contain_text("moved forward")
    shot(page, "clock")
    page.goto(f"{base}/dashboard/orders?status=expired")
    expect(page.get_by_role("link", name=expiring)).to_be_visible()

    # A phone-sized screen still shows the order list.
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(f"{base}/dashboard/orders")
    shot(page, "orders-phone")

    # Sign out: back to the sign-in page, and the orders need signing in again.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{base}/dashboard/sign-in")
    page.goto(f"{base}/dashboard/orders")
    expect(page).to_have_url(f"{base}/dashboard/sign-in")

    browser.close()
print("dashboard browser test passed")
