"""Verifies deliveries with the independent `standardwebhooks` library (PyPI).

Usage: standardwebhooks_verify.py FILE, where FILE holds {"secret", "messages": [{"id",
"timestamp", "signature", "body"}]}. Exits non-zero if any message does not verify.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook

with open(sys.argv[1]) as f:
    data = json.load(f)
hook = Webhook(data["secret"])
for message in data["messages"]:
    headers = {
        "webhook-id": message["id"],
        "webhook-timestamp": message["timestamp"],
        "webhook-signature": message["signature"],
    }
    payload = hook.verify(message["body"], headers)
    assert payload["id"] == message["id"], payload
print(f"verified {len(data['messages'])} deliveries")
