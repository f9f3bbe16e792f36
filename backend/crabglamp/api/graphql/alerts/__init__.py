"""Alert endpoints (webhooks) of an account and the deliveries made to them."""
