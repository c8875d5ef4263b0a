"""QuickBooks Online: OAuth 2.0 with rotating refresh tokens, and the Accounting API client."""
