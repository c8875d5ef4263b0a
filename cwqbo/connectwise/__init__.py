"""ConnectWise PSA (Manage) REST API v3 client, models and permission probes."""
